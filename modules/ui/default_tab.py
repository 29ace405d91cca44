"""The Default tab: an input and the model's raw continuation side by side, with saved
prompts: the shared ones in prompts/ and each person's private ones (files handled by
modules.prompts_store over the server's Library). As in text-generation-webui, the layout
(create_ui) and the events (create_event_handlers) are apart."""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from modules import prompts_store
from modules.front_door import SessionControl
from modules.params import GenerationParams, ParamError
from modules.ui import file_choices, notify
from modules.ui.context import UIContext
from modules.ui.file_choices import FileButtons, FileForm

# UI plumbing, not an API: kept out of the API page.
_QUIET = dict(show_progress="hidden", api_visibility="undocumented")


def build(ctx: UIContext) -> None:
    create_event_handlers(ctx, create_ui(ctx))


# ---- layout -------------------------------------------------------------------------------

@dataclass
class DefaultUI:
    input_box: gr.Textbox
    output_box: gr.Textbox
    generate: gr.Button
    stop: gr.Button
    continue_button: gr.Button
    status: gr.Markdown
    control: gr.State              # this browser session's request handle
    prompt_choice: gr.Dropdown
    prompt_name: gr.Textbox
    prompt_shared: gr.Checkbox
    prompt_buttons: FileButtons
    prompt_status: gr.Markdown


def create_ui(ctx: UIContext) -> DefaultUI:
    prompts = file_choices.library(ctx).prompts
    control = gr.State(SessionControl)       # a new handle per browser session
    with gr.Row():
        with gr.Column():
            input_box = gr.Textbox(lines=20, max_lines=40, label="Input", elem_id="default-input",
                                   placeholder="The prompt, sent as it is (no chat template).")
            with gr.Row():
                generate = gr.Button("Generate", variant="primary", elem_id="default-generate")
                stop = gr.Button("Stop", variant="stop", elem_id="default-stop")
                continue_button = gr.Button("Continue", elem_id="default-continue")
            with gr.Row():
                prompt_choice = gr.Dropdown(file_choices.choices(prompts, None), value=None,
                                            label="Prompt", scale=3, elem_id="default-prompt-choice",
                                            info="Choosing one loads it into Input. Yours are marked "
                                                 "(private); only an admin can change the shared ones.")
                prompt_name = gr.Textbox(label="Save Input as", placeholder="prompt name", scale=2,
                                         elem_id="default-prompt-name")
                prompt_shared = file_choices.shared_box()
            with gr.Row():
                prompt_buttons = file_choices.file_buttons("prompt", elem_id="default-prompt")
            prompt_status = gr.Markdown(elem_id="default-prompt-status")
        with gr.Column():
            output_box = gr.Textbox(lines=20, max_lines=40, label="Output", elem_id="default-output",
                                    buttons=["copy"])
            status = gr.Markdown(elem_id="default-status")
    return DefaultUI(input_box, output_box, generate, stop, continue_button, status, control,
                     prompt_choice, prompt_name, prompt_shared, prompt_buttons, prompt_status)


# ---- events -------------------------------------------------------------------------------

def create_event_handlers(ctx: UIContext, ui: DefaultUI) -> None:
    _generation_handlers(ctx, ui)
    _prompt_handlers(ctx, ui)


def _generation_handlers(ctx: UIContext, ui: DefaultUI) -> None:
    def run(prompt, earlier_output, params_values, session_control, key, request: gr.Request):
        """Streams into Output: a fresh reply, or (Continue) more after the earlier output."""
        try:
            params = GenerationParams.from_dict(params_values or {}, strict=False)
            who = ctx.identify(request, key)
        except (ParamError, ValueError) as exc:
            yield gr.skip(), f"⚠️ {exc}"
            return
        for update in ctx.front_door.stream_completion(who, (prompt or "") + earlier_output, params,
                                                       session_control):
            for notice in update.notices:
                notify.info(notice)
            finished = update.finished
            if finished is not None and finished.reason == "error":
                notify.warn(finished.error)
                yield gr.skip(), f"⚠️ {notify.plain(update.status)}"
                return
            yield earlier_output + update.text, notify.plain(update.status)

    def generate_fresh(prompt, params_values, session_control, key, request: gr.Request):
        yield from run(prompt, "", params_values, session_control, key, request)

    def generate_more(prompt, output, params_values, session_control, key, request: gr.Request):
        yield from run(prompt, output or "", params_values, session_control, key, request)

    key, outputs = ctx.browser_key, [ui.output_box, ui.status]
    ui.generate.click(generate_fresh, [ui.input_box, ctx.params_state, ui.control, key], outputs,
                      concurrency_limit=None)
    ui.continue_button.click(generate_more, [ui.input_box, ui.output_box, ctx.params_state, ui.control,
                                             key], outputs, concurrency_limit=None)
    ui.stop.click(lambda c: c.stop() and None, [ui.control], None, queue=False, **_QUIET)


def _prompt_handlers(ctx: UIContext, ui: DefaultUI) -> None:
    """Saved prompts: listed, loaded, saved and deleted as the person the server identifies;
    saving over a name and deleting ask first (file_choices.wire_save_and_delete)."""
    prompts = file_choices.library(ctx).prompts

    def load(name, key, request: gr.Request):
        if not name:
            return gr.skip(), gr.skip(), ""
        try:
            text = prompts_store.load_prompt(name, prompts, file_choices.visitor(ctx, request, key))
        except (ValueError, OSError) as exc:
            return gr.skip(), gr.skip(), file_choices.refused("Not loaded", exc)
        return text, name, f"Loaded prompt **{name}**."

    file_choices.list_on_load(ctx, prompts, ui.prompt_choice, ui.prompt_shared)
    ui.prompt_choice.input(load, [ui.prompt_choice, ctx.browser_key],
                           [ui.input_box, ui.prompt_name, ui.prompt_status], **_QUIET)
    file_choices.wire_save_and_delete(ctx, FileForm(
        store=prompts, noun="prompt", dropdown=ui.prompt_choice, name_box=ui.prompt_name,
        contents=[ui.input_box], shared=ui.prompt_shared, status=ui.prompt_status,
        buttons=ui.prompt_buttons,
        write=lambda name, values, who, scope: prompts_store.save_prompt(name, values[0], prompts,
                                                                         who, scope)))
