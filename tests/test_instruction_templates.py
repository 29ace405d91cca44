import os

import pytest

from loaders.gguf_metadata import read_metadata
from modules.instruction_templates import (
    InstructionTemplateError, TemplateError, delete_template, list_templates, load_template,
    render_preview, save_template,
)
from modules.safe_files import UnsafeNameError
from modules.template_render import render_chat_template

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "Joke?"},
]


def render_shipped(name, bos="<s>", eos="</s>", add_generation_prompt=True):
    return render_chat_template(load_template(name), CONVERSATION, add_generation_prompt,
                                bos_token=bos, eos_token=eos)


def test_all_expected_templates_are_shipped():
    assert {"ChatML", "Llama-3", "Mistral", "Alpaca", "Vicuna-v1.1", "Gemma"} <= set(list_templates())


def test_chatml():
    assert render_shipped("ChatML") == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n"
        "<|im_start|>user\nJoke?<|im_end|>\n"
        "<|im_start|>assistant\n")
    assert not render_shipped("ChatML", add_generation_prompt=False).endswith("assistant\n")


def test_llama_3():
    assert render_shipped("Llama-3", bos="<|begin_of_text|>") == (
        "<|begin_of_text|>"
        "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nJoke?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_mistral_folds_system_into_first_user_turn():
    assert render_shipped("Mistral") == "<s>[INST] Be brief.\n\nHi [/INST] Hello!</s>[INST] Joke? [/INST]"


def test_gemma_uses_model_role_and_folds_system():
    assert render_shipped("Gemma", bos="<bos>") == (
        "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
        "<start_of_turn>model\nHello!<end_of_turn>\n"
        "<start_of_turn>user\nJoke?<end_of_turn>\n"
        "<start_of_turn>model\n")


def test_alpaca():
    text = render_shipped("Alpaca")
    assert text == ("Be brief.\n\n### Instruction:\nHi\n\n### Response:\nHello!\n\n"
                    "### Instruction:\nJoke?\n\n### Response:\n")
    default_system = render_chat_template(load_template("Alpaca"), CONVERSATION[1:])
    assert default_system.startswith("Below is an instruction that describes a task.")


def test_vicuna():
    assert render_shipped("Vicuna-v1.1") == (
        "Be brief.\n\nUSER: Hi\nASSISTANT: Hello!</s>\nUSER: Joke?\nASSISTANT:")


def test_shipped_templates_tolerate_a_greeting_before_the_first_user_turn():
    # Characters start the chat with the assistant's greeting.
    messages = [CONVERSATION[0], CONVERSATION[2], CONVERSATION[1]]
    for name in list_templates():
        assert "Hi" in render_chat_template(load_template(name), messages)


def test_preview_renders_sample_conversation():
    text = render_preview(load_template("ChatML"))
    assert text.count("<|im_start|>user\n") == 2
    assert text.endswith("<|im_start|>assistant\n")


def test_syntax_error_reports_its_line():
    source = "{% for m in messages %}\n{{ m.content }}\n{% endfor %\n"
    with pytest.raises(TemplateError) as caught:
        render_preview(source)
    assert caught.value.lineno == 3
    assert "line 3" in str(caught.value)


def test_error_raised_by_the_template_reports_its_message_and_line():
    source = "{{ bos_token }}\n{% if messages[0].role == 'system' %}\n{{ raise_exception('System role not supported') }}\n{% endif %}"
    with pytest.raises(TemplateError, match="on line 3: .*System role not supported"):
        render_preview(source)


def test_undefined_and_unsafe_operations_are_template_errors():
    with pytest.raises(TemplateError, match="on line 2"):
        render_preview("ok\n{{ nothing.here }}")
    with pytest.raises(TemplateError, match="unsafe"):
        render_preview("{{ messages.append(1) }}")
    with pytest.raises(TemplateError, match="empty"):
        render_preview("   ")


def test_sandbox_blocks_python_internals():
    with pytest.raises(TemplateError, match="unsafe"):
        render_preview("{{ messages.__class__.__mro__ }}")


def test_save_and_load_both_formats(tmp_path):
    source = "{%- for m in messages -%}\n  {{- m['role'] + ': ' + m['content'] + '\\n' -}}\n{%- endfor -%}\n"
    save_template("Mine", source, tmp_path)
    assert (tmp_path / "Mine.yaml").read_text().startswith("instruction_template: |")
    assert load_template("Mine", tmp_path) == source
    (tmp_path / "Plain.jinja").write_text("{{ messages[0]['content'] }}")
    assert list_templates(tmp_path) == ["Mine", "Plain"]
    save_template("Plain", "{{ messages[-1]['content'] }}", tmp_path)
    assert (tmp_path / "Plain.jinja").read_text() == "{{ messages[-1]['content'] }}"
    assert not (tmp_path / "Plain.yaml").exists()


def test_save_refuses_a_template_that_does_not_compile(tmp_path):
    with pytest.raises(TemplateError, match="line 2"):
        save_template("Broken", "fine\n{% if %}", tmp_path)
    assert os.listdir(tmp_path) == []


def test_broken_or_old_style_files_give_clear_errors_and_others_still_list(tmp_path):
    (tmp_path / "Good.jinja").write_text("{{ 1 }}")
    (tmp_path / "Bad.yaml").write_text("instruction_template: |-\n  ok\n bad: [\n")
    (tmp_path / "Old.yaml").write_text("user: 'USER:'\nbot: 'ASSISTANT:'\nturn_template: '<|user|>'\n")
    assert list_templates(tmp_path) == ["Bad", "Good", "Old"]
    with pytest.raises(InstructionTemplateError, match=r"Bad\.yaml: invalid YAML at line \d"):
        load_template("Bad", tmp_path)
    with pytest.raises(InstructionTemplateError, match="Old.yaml: expected an 'instruction_template' key"):
        load_template("Old", tmp_path)
    assert load_template("Good", tmp_path) == "{{ 1 }}"


def test_delete_removes_every_format(tmp_path):
    (tmp_path / "T.jinja").write_text("a")
    (tmp_path / "T.yaml").write_text("instruction_template: b\n")
    delete_template("T", tmp_path)
    assert os.listdir(tmp_path) == []
    with pytest.raises(InstructionTemplateError, match="no instruction template named 'T'"):
        delete_template("T", tmp_path)


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", ".hidden", ""])
def test_unsafe_names_are_refused_and_nothing_outside_is_touched(tmp_path, name):
    folder = tmp_path / "templates"
    folder.mkdir()
    outside = tmp_path / "escape.yaml"
    outside.write_text("instruction_template: x\n")
    with pytest.raises(UnsafeNameError):
        save_template(name, "{{ 1 }}", folder)
    with pytest.raises(UnsafeNameError):
        delete_template(name, folder)
    with pytest.raises(UnsafeNameError):
        load_template(name, folder)
    assert outside.read_text() == "instruction_template: x\n"
    assert os.listdir(folder) == []


def test_transformers_template_features_work():
    source = (
        "{{ tools | tojson }}\n"
        "{% for m in messages %}{% if loop.index > 2 %}{% break %}{% endif %}"
        "{% if m.role == 'assistant' %}{% generation %}A:{{ m.content }}{% endgeneration %}"
        "{% else %}U:{{ m.get('content') }}{% endif %}|{% endfor %}")
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"},
                {"role": "user", "content": "never"}]
    assert render_chat_template(source, messages, tools=[{"name": "é"}]) == '[{"name": "é"}]\nU:hi|A:yo|'


def test_the_bundled_models_own_template_renders():
    from pathlib import Path
    model = Path(__file__).resolve().parents[1] / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not model.is_file():
        pytest.skip("model file not present")
    text = render_preview(read_metadata(model)["tokenizer.chat_template"])
    assert text.count("<|im_start|>user\n") == 2 and text.endswith("<|im_start|>assistant\n")
