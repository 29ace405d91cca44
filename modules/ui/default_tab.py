"""The Default tab: an input and the model's raw continuation side by side, with saved
prompts: the shared ones in prompts/ and each person's private ones (files handled by
modules.prompts_store over the server's Library)."""
from __future__ import annotations

import gradio as gr

from modules import prompts_store
from modules.front_door import SessionControl
from modules.params import GenerationParams, ParamError
from modules.ui import file_choices, notify
from modules.ui.context import UIContext

# UI plumbing, not an API: kept out of the API page.
_QUIET = dict(show_progress="hidden", api_visibility="undocumented")


def build(ctx: UIContext) -> None:
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
                save_button = gr.Button("Save prompt", size="sm", elem_id="default-prompt-save")
                delete_button = gr.Button("Delete prompt", size="sm", variant="stop",
                                          elem_id="default-prompt-delete")
            prompt_status = gr.Markdown(elem_id="default-prompt-status")
        with gr.Column():
            output_box = gr.Textbox(lines=20, max_lines=40, label="Output", elem_id="default-output",
                                    buttons=["copy"])
            status = gr.Markdown(elem_id="default-status")

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
                yield gr.skip(), f"⚠️ {update.status}"
                return
            yield earlier_output + update.text, update.status

    def generate_fresh(prompt, params_values, session_control, key, request: gr.Request):
        yield from run(prompt, "", params_values, session_control, key, request)

    def generate_more(prompt, output, params_values, session_control, key, request: gr.Request):
        yield from run(prompt, output or "", params_values, session_control, key, request)

    generate.click(generate_fresh, [input_box, ctx.params_state, control, ctx.browser_key],
                   [output_box, status], concurrency_limit=None)
    continue_button.click(generate_more, [input_box, output_box, ctx.params_state, control, ctx.browser_key],
                          [output_box, status], concurrency_limit=None)
    stop.click(lambda c: c.stop() and None, [control], None, queue=False, **_QUIET)

    # ---- saved prompts: listed, saved and deleted as the person the server identifies ----
    def load(name, key, request: gr.Request):
        if not name:
            return gr.skip(), gr.skip(), ""
        try:
            text = prompts_store.load_prompt(name, prompts, file_choices.visitor(ctx, request, key))
        except (ValueError, OSError) as exc:
            return gr.skip(), gr.skip(), file_choices.refused("Not loaded", exc)
        return text, name, f"Loaded prompt **{name}**."

    def save(name, prompt, to_shared, key, request: gr.Request):
        scope = file_choices.scope_for(to_shared)
        try:
            who = ctx.identify(request, key)
            path = prompts_store.save_prompt(name, prompt, prompts, who, scope)
        except file_choices.FAILURES as exc:
            return gr.skip(), file_choices.refused("Not saved", exc)
        return (gr.Dropdown(choices=file_choices.choices(prompts, who), value=path.stem),
                f"Saved prompt **{path.stem}** ({file_choices.where(scope)}).")

    def delete(name, key, request: gr.Request):
        if not name:
            return gr.skip(), "Choose the prompt to delete first."
        try:
            who = ctx.identify(request, key)
            scope = prompts_store.delete_prompt(name, prompts, who)
        except file_choices.FAILURES as exc:
            return gr.skip(), file_choices.refused("Not deleted", exc)
        return (gr.Dropdown(choices=file_choices.choices(prompts, who), value=None),
                f"Deleted the {scope} prompt **{name}**.")

    file_choices.list_on_load(ctx, prompts, prompt_choice, prompt_shared)
    prompt_choice.input(load, [prompt_choice, ctx.browser_key],
                        [input_box, prompt_name, prompt_status], **_QUIET)
    save_button.click(save, [prompt_name, input_box, prompt_shared, ctx.browser_key],
                      [prompt_choice, prompt_status], **_QUIET)
    delete_button.click(delete, [prompt_choice, ctx.browser_key], [prompt_choice, prompt_status],
                        **_QUIET)
