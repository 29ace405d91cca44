"""The current date and time on the server, for the model (which knows neither)."""
from datetime import datetime

tool = {
    "type": "function",
    "function": {
        "name": "get_datetime",
        "description": "Get the current date and time.",
        "parameters": {"type": "object", "properties": {}},
    },
}


def execute(arguments):
    now = datetime.now().astimezone()
    return {"date": now.strftime("%Y-%m-%d"), "weekday": now.strftime("%A"),
            "time": now.strftime("%H:%M"), "timezone": now.strftime("%Z (UTC%z)")}
