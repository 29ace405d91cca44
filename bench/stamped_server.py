"""server.py, plus one record for bench_ui_streaming.py: when each request's last token
was generated (wall clock, time.time()), appended as a JSON line to $BENCH_TOKEN_LOG.

The page's lag is measured from that moment. The history store's updated_at comes later
(after the chat service received the Finished event and saved the reply), so timing from
it would leave out part of the lag the user sees.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from modules.request import Request  # noqa: E402
from modules.scheduler import Scheduler  # noqa: E402

_add_token = Request.add_token
_report_finished = Scheduler._report_finished


def add_token(self, token, piece):
    _add_token(self, token, piece)
    self.last_token_wall = time.time()


def report_finished(self, request):
    with open(os.environ["BENCH_TOKEN_LOG"], "a", encoding="utf-8") as log:
        log.write(json.dumps({"tokens": len(request.generated), "reason": request.finished.reason,
                              "last_token": getattr(request, "last_token_wall", None)}) + "\n")
    _report_finished(self, request)


Request.add_token = add_token
Scheduler._report_finished = report_finished

if __name__ == "__main__":
    import server
    sys.argv[0] = str(ROOT / "server.py")
    server.main()
