"""The Notebook tab: one free text that the model continues (raw completion, no chat
template), with a Tokens view and a next-token Probabilities view beside it."""
from __future__ import annotations

import html
import json
from types import SimpleNamespace

import gradio as gr

from modules.front_door import GenerationError, SessionControl
from modules.params import GenerationParams, ParamError
from modules.request_limits import LimitExceeded
from modules.ui import notify
from modules.ui.context import UIContext

PROBABILITY_COUNT = 10
# UI plumbing, not an API: kept out of the API page. "always_last" (below) never drops
# the final value of a burst of edits.
_QUIET = dict(show_progress="hidden", api_visibility="undocumented")


def build(ctx: UIContext) -> None:
    create_event_handlers(ctx, create_ui())


def create_ui() -> SimpleNamespace:
    ui = SimpleNamespace()
    ui.control = gr.State(SessionControl)       # a new handle per browser session
    ui.before_last = gr.State(None)             # the text before the last generation, for Undo
    with gr.Row():
        with gr.Column(scale=3):
            ui.text = gr.Textbox(lines=22, max_lines=40, show_label=False, elem_id="notebook-text",
                                 placeholder="Write the beginning of a text; Generate continues it.")
            with gr.Row():
                ui.generate = gr.Button("Generate", variant="primary", elem_id="notebook-generate")
                ui.stop = gr.Button("Stop", variant="stop", elem_id="notebook-stop")
                ui.undo = gr.Button("Undo", elem_id="notebook-undo")
            ui.status = gr.Markdown(elem_id="notebook-status")
        with gr.Column(scale=2):
            with gr.Tabs():
                with gr.Tab("Tokens", id="notebook-tokens"):
                    ui.token_summary = gr.Markdown()
                    ui.token_table = gr.Dataframe(headers=["#", "id", "token"],
                                                  datatype=["number", "number", "str"],
                                                  interactive=False, max_height=520,
                                                  elem_id="notebook-token-table")
                with gr.Tab("Probabilities", id="notebook-probabilities") as ui.probabilities_tab:
                    ui.chart = gr.HTML(elem_id="notebook-probability-chart")
                    ui.refresh = gr.Button("Refresh", size="sm")
    return ui


def create_event_handlers(ctx: UIContext, ui: SimpleNamespace) -> None:
    def run_generation(current, params_values, session_control, key, request: gr.Request):
        try:
            params = _params(params_values)
            who = ctx.identify(request, key)
        except (ParamError, ValueError) as exc:
            yield gr.skip(), gr.skip(), f"⚠️ {notify.plain(exc)}"
            return
        before = current or ""
        for update in ctx.front_door.stream_completion(who, before, params, session_control):
            for notice in update.notices:
                notify.info(notice)
            finished = update.finished
            if finished is not None and finished.reason == "error":
                notify.warn(finished.error)
                yield gr.skip(), gr.skip(), f"⚠️ {notify.plain(update.status)}"
                return
            yield before + update.text, before, notify.plain(update.status)

    def show_tokens(current, params_values, key, request: gr.Request):
        try:
            who = ctx.identify(request, key)
            tokens = ctx.front_door.token_view(who, current, _params(params_values))
        except (ParamError, LimitExceeded, ValueError) as exc:
            return f"⚠️ {notify.plain(exc)}", []
        rows = [[i, token, _readable(piece)] for i, (token, piece) in enumerate(tokens)]
        return f"**{len(rows)}** tokens", rows

    def show_probabilities(current, params_values, key, request: gr.Request):
        try:
            params = _params(params_values)
            who = ctx.identify(request, key)
            candidates = ctx.front_door.next_token_probabilities(who, current, params, PROBABILITY_COUNT)
        except (ParamError, LimitExceeded, GenerationError, ValueError) as exc:
            return f"<p>⚠️ {html.escape(str(exc))}</p>"
        return probability_chart(candidates, params)

    def undo_last(previous, session_control):
        session_control.stop()
        if previous is None:
            return gr.skip(), None, "Nothing to undo."
        return previous, None, "Restored the text from before the last generation."

    # The scheduler queues the model's work, so these run for every browser at once.
    # Tokens first: they are instant, the probabilities need a pass over the whole text.
    tokens_update = dict(fn=show_tokens, inputs=[ui.text, ctx.params_state, ctx.browser_key],
                         outputs=[ui.token_summary, ui.token_table], concurrency_limit=None, **_QUIET)
    probabilities_update = dict(fn=show_probabilities, inputs=[ui.text, ctx.params_state, ctx.browser_key],
                                outputs=ui.chart, concurrency_limit=None, **_QUIET)

    generation = ui.generate.click(run_generation, [ui.text, ctx.params_state, ui.control, ctx.browser_key],
                                   [ui.text, ui.before_last, ui.status], concurrency_limit=None,
                                   show_progress="hidden")
    generation.then(**tokens_update).then(**probabilities_update)
    ui.stop.click(lambda c: c.stop() and None, [ui.control], None, queue=False, **_QUIET)
    # Undo also cancels a generation in flight, so none of its late updates overwrite the text.
    ui.undo.click(undo_last, [ui.before_last, ui.control], [ui.text, ui.before_last, ui.status],
                  cancels=[generation], **_QUIET).then(**tokens_update).then(**probabilities_update)

    ui.text.input(**tokens_update, trigger_mode="always_last")
    # Not on every keystroke: when the user leaves the text, opens the view or asks.
    for trigger in (ui.text.blur, ui.refresh.click, ui.probabilities_tab.select):
        trigger(**probabilities_update, trigger_mode="always_last")
    # A moved slider in the Parameters tab reshapes the chart (temperature flattens it).
    ctx.params_state.change(**tokens_update, trigger_mode="always_last").then(**probabilities_update)


def probability_chart(candidates, params: GenerationParams) -> str:
    """An HTML bar chart on a fixed 0-100 % scale, so a flatter distribution shows as
    shorter bars rather than being rescaled away."""
    if not candidates:
        return "<p>This loader cannot show next-token probabilities.</p>"
    if params.is_greedy:
        heading = "Greedy decoding (do_sample off or temperature 0): always the likeliest token."
    else:
        heading = f"Next token at temperature {params.temperature:g}" + _truncation_note(params)
    rows = []
    for candidate in candidates:
        percent = candidate.probability * 100
        rows.append(
            '<div style="display:flex;align-items:center;gap:8px;margin:2px 0">'
            f'<code style="width:9em;overflow:hidden;white-space:pre" title="id {candidate.token}">'
            f'{html.escape(_readable(candidate.text))}</code>'
            '<div style="flex:1;background:var(--block-border-color);border-radius:3px;height:14px">'
            f'<div class="probability-bar" style="width:{percent:.2f}%;height:100%;'
            'background:var(--color-accent);border-radius:3px"></div></div>'
            f'<span style="width:4.5em;text-align:right">{percent:.1f}%</span></div>')
    return f"<div><p>{html.escape(heading)}</p>{''.join(rows)}</div>"


def _truncation_note(params: GenerationParams) -> str:
    active = [f"{name} {getattr(params, name):g}" for name, off in
              (("top_k", 0), ("top_p", 1.0), ("min_p", 0.0), ("typical_p", 1.0)) if getattr(params, name) != off]
    return f" ({', '.join(active)})" if active else ""


def _readable(piece: str) -> str:
    """A token as a quoted string, so spaces and line breaks are visible."""
    return json.dumps(piece, ensure_ascii=False)


def _params(values) -> GenerationParams:
    return GenerationParams.from_dict(values or {}, strict=False)
