"""The Chat tab: a conversation with the loaded model, streamed as it is written."""
from __future__ import annotations

import gradio as gr

from modules.chat_session import SessionControl, stream_reply
from modules.params import GenerationParams, ParamError
from modules.ui.context import UIContext


def build(ctx: UIContext) -> None:
    history = gr.State([])                      # this browser's conversation
    control = gr.State(SessionControl)          # a new handle per browser session
    chatbot = gr.Chatbot(label="Chat", height=520, buttons=["copy", "copy_all"],
                         elem_id="chat-view", feedback_options=None)
    status = gr.Markdown(elem_id="chat-status")
    with gr.Row():
        textbox = gr.Textbox(placeholder="Send a message (Enter to send, Shift+Enter for a new line)",
                             show_label=False, scale=8, lines=2, elem_id="chat-input")
        send = gr.Button("Send", variant="primary", scale=1, elem_id="chat-send")
        stop = gr.Button("Stop", variant="stop", scale=1, elem_id="chat-stop")
    with gr.Row():
        new_chat = gr.Button("New chat", size="sm", elem_id="chat-new")

    def add_user_message(text, messages):
        text = (text or "").strip()
        if not text:
            return gr.update(), messages, messages
        messages = messages + [{"role": "user", "content": text}]
        return "", messages, messages

    def generate(messages, params_values, template, character, session_control, request: gr.Request):
        if not messages or messages[-1]["role"] != "user":
            yield gr.update(), messages, gr.update()
            return
        try:
            params = GenerationParams.from_dict(params_values or {}, strict=False)
        except ParamError as exc:
            yield gr.update(), messages, f"Error: {exc}"
            return
        system = (character or {}).get("context", "").strip()
        prompt_messages = ([{"role": "system", "content": system}] if system else []) + messages
        owner = getattr(request, "session_hash", "") or ""
        reply = {"role": "assistant", "content": ""}
        shown = messages + [reply]
        for update in stream_reply(ctx.scheduler, prompt_messages, params, template,
                                   owner=owner, control=session_control):
            for notice in update.notices:
                gr.Info(notice)
            reply["content"] = update.text
            if update.finished is not None and update.finished.reason == "error" and not update.text:
                gr.Warning(update.finished.error)
                yield messages, messages, update.status
                return
            yield shown, shown, update.status

    submit_inputs = [history, ctx.params_state, ctx.template_state, ctx.character_state, control]
    for trigger in (send.click, textbox.submit):
        trigger(add_user_message, [textbox, history], [textbox, history, chatbot], queue=False) \
            .then(generate, submit_inputs, [chatbot, history, status], concurrency_limit=None)

    stop.click(lambda c: c.stop() and None, [control], None, queue=False)
    new_chat.click(lambda c: (c.stop(), [], [], "")[1:], [control], [history, chatbot, status], queue=False)
