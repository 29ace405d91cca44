"""A calculator for the model: arithmetic on numbers, read with Python's own parser and
worked out here, never run as code (no eval). Only numbers and + - * / // % ** and
parentheses are accepted; powers and products whose result would be too large to hold
are refused, so no expression can take the server's memory or time."""
import ast
import math
import operator

MAX_EXPRESSION_CHARS = 500
MAX_INT_BITS = 4096            # about 1,200 decimal digits
MAX_EXPONENT = 10_000

BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
          ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
          ast.Pow: operator.pow}
UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}

tool = {
    "type": "function",
    "function": {
        "name": "calculate",
        "description": "Work out an arithmetic expression with numbers and + - * / // % ** and "
                       "parentheses, e.g. '2 * (3 + 4) ** 2'.",
        "parameters": {
            "type": "object",
            "properties": {
                "expression": {"type": "string", "description": "The expression to work out."},
            },
            "required": ["expression"],
        },
    },
}


class CalculationError(ValueError):
    pass


def calculate(expression: str):
    if not isinstance(expression, str) or not expression.strip():
        raise CalculationError("Give an expression, e.g. '2 * (3 + 4)'.")
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise CalculationError(f"The expression is longer than {MAX_EXPRESSION_CHARS} characters.")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError) as exc:
        raise CalculationError(f"Not an arithmetic expression: {getattr(exc, 'msg', exc)}.") from None
    result = _value(tree.body)
    if isinstance(result, float) and not math.isfinite(result):
        raise CalculationError("The result is too large for a floating-point number.")
    return result


def _value(node):
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):   # not bool, str, complex
        return node.value
    if isinstance(node, ast.UnaryOp) and type(node.op) in UNARY:
        return UNARY[type(node.op)](_value(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in BINARY:
        left, right = _value(node.left), _value(node.right)
        _check_size(node.op, left, right)
        try:
            return BINARY[type(node.op)](left, right)
        except ZeroDivisionError:
            raise CalculationError("Division by zero.") from None
        except OverflowError:
            raise CalculationError("The result is too large.") from None
    if isinstance(node, ast.Constant):
        raise CalculationError(f"{node.value!r} is not a number.")
    if isinstance(node, ast.Name):
        raise CalculationError(f"Names such as {node.id!r} are not allowed: use numbers only.")
    if isinstance(node, ast.Attribute):
        raise CalculationError("Attributes are not allowed: use numbers only.")
    raise CalculationError(f"{type(node).__name__} is not allowed: use numbers and + - * / // % ** only.")


def _check_size(op, left, right) -> None:
    """Refuses, before working it out, an integer result larger than MAX_INT_BITS."""
    if isinstance(op, ast.Pow):
        if abs(right) > MAX_EXPONENT:
            raise CalculationError(f"The exponent {right:g} is too large (at most {MAX_EXPONENT:,}).")
        if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
            if math.log2(abs(left)) * right > MAX_INT_BITS:
                raise CalculationError("The result would be too large.")
    elif isinstance(op, ast.Mult) and isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > MAX_INT_BITS + 1:
            raise CalculationError("The result would be too large.")


def execute(arguments):
    expression = arguments.get("expression", "")
    try:
        return {"expression": expression, "result": calculate(expression)}
    except CalculationError as exc:
        return {"expression": expression, "error": str(exc)}
