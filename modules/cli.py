"""Command-line flags, with text-generation-webui's names and meanings."""
from __future__ import annotations

import argparse

from loaders.settings import LoadSettings
from modules.limits import add_limit_flags

DEFAULT_PORT = 7860


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="server.py", description="A local LLM workbench: chat with, test and tune local models "
        "from the browser.", formatter_class=argparse.ArgumentDefaultsHelpFormatter)

    basic = parser.add_argument_group("Basic settings")
    basic.add_argument("--model", help="Model to load at start: a .gguf file or a model folder, by name "
                       "inside --model-dir or by path. Default: the first model found, preferring the "
                       "default SmolLM2 GGUF.")
    basic.add_argument("--model-dir", default="models", help="Folder holding the models.")
    basic.add_argument("--loader", choices=["llama.cpp", "Transformers", "GPTQ"],
                       help="Force a loader instead of detecting it from the files.")
    basic.add_argument("--settings", help="A YAML file of default UI settings (sampler values and "
                       "preset, e.g. 'preset: Balanced' or 'temperature: 0.7').")
    basic.add_argument("--extensions", nargs="+", default=[], help="Extensions to enable at start, by folder "
                       "name in extensions/; their hooks run in this order (docs/extensions.md).")
    basic.add_argument("--extension-timeout", type=float, default=10.0, help="Seconds an extension's hook "
                       "may take for one request; past that the request goes on without it.")
    basic.add_argument("--verbose", action="store_true", help="Print prompts and backend logs to the console.")
    basic.add_argument("--data-dir", default="data", help="Where chats and per-model settings are stored.")

    llama = parser.add_argument_group("llama.cpp")
    llama.add_argument("--ctx-size", type=int, default=0, help="Context length of each sequence in tokens; "
                       "0 uses the model's trained length, capped at 4096.")
    llama.add_argument("--gpu-layers", "--n-gpu-layers", dest="gpu_layers", type=int, default=0,
                       help="Layers to offload to the GPU (needs a CUDA build of llama-cpp-python; -1 for all).")
    llama.add_argument("--threads", type=int, default=0, help="Threads for generation; 0 uses the cores available.")
    llama.add_argument("--threads-batch", type=int, default=0, help="Threads for prompt processing; 0: same as --threads.")
    llama.add_argument("--batch-size", type=int, default=512, help="Most prompt tokens processed in one pass.")
    llama.add_argument("--no-mmap", action="store_true", help="Read the whole model into memory instead of mapping it.")
    llama.add_argument("--mlock", action="store_true", help="Lock the model in RAM so the system never swaps it out.")
    llama.add_argument("--parallel", type=int, default=4, help="Sequences decoded together (users served at once); "
                       "each gets --ctx-size tokens of context.")
    llama.add_argument("--no-cache-reuse", dest="cache_reuse", action="store_false",
                       help="Read every prompt from its first token instead of keeping each slot's cache "
                       "for the next prompt that starts the same way (the next turn of a chat).")
    llama.add_argument("--cache-ram", type=int, default=1024, help="MiB of host memory for the caches of "
                       "slots handed to other chats, so a chat taken up again is restored, not read "
                       "again; 0: none.")
    llama.add_argument("--prefill-chunk", type=int, default=0, help="Prompt tokens one pass reads while "
                       "others are generating; 0: sized from measured times so their replies keep "
                       "their pace.")

    hf = parser.add_argument_group("Transformers and GPTQ")
    hf.add_argument("--cpu", action="store_true", help="Run on the CPU even if a GPU is present.")
    hf.add_argument("--bf16", action="store_true", help="Load the weights in bfloat16.")
    hf.add_argument("--cpu-memory", default="", help="Most CPU memory to use for weights, e.g. 16GiB.")
    hf.add_argument("--gpu-split", default="", help="GiB of weights per GPU, comma separated, e.g. 20,24.")
    hf.add_argument("--load-in-8bit", action="store_true", help="Quantize to 8 bits at load (bitsandbytes, GPU only).")
    hf.add_argument("--load-in-4bit", action="store_true", help="Quantize to 4 bits at load (bitsandbytes, GPU only).")
    hf.add_argument("--trust-remote-code", action="store_true", help="Allow model folders' own Python code to "
                    "run when they are loaded. Only here, on the command line: the Model tab has no such switch.")
    hf.add_argument("--attn-implementation", default="", choices=["", "sdpa", "eager", "flash_attention_2"],
                    help="Attention implementation for Transformers models.")

    net = parser.add_argument_group("Network and access")
    net.add_argument("--listen", action="store_true", help="Accept connections from the local network, not only this machine.")
    net.add_argument("--listen-host", help="Address to listen on (with --listen). Default 0.0.0.0.")
    net.add_argument("--listen-port", type=int, default=DEFAULT_PORT, help="Port to listen on.")
    net.add_argument("--gradio-auth", help="Accounts as 'user:pass,user2:pass2'. Other local users can read "
                     "this in the process list: prefer --gradio-auth-path.")
    net.add_argument("--gradio-auth-path", help="A file of accounts, one 'user:password' or 'user:HASH[:admin]' "
                     "a line (tools/accounts.py writes hashed entries). Must not be readable by group or others.")
    net.add_argument("--admin-users", default="", help="Comma-separated account names that may change what "
                     "everyone uses: the model, downloads, shared presets, characters, templates and prompts.")
    net.add_argument("--everyone-admin", action="store_true", help="Without accounts, make every visitor an "
                     "admin (by default only browsers on this machine are).")
    net.add_argument("--forwarded-allow-ips", default="", help="Addresses of reverse proxies whose "
                     "X-Forwarded-For header is believed, comma separated. Default: none, so a client "
                     "cannot pretend to be another address.")
    api = parser.add_argument_group("API (docs/api.md)")
    api.add_argument("--api", action="store_true", help="Also serve OpenAI- and Anthropic-compatible endpoints "
                     "under /v1 on the page's own port (and on --api-port when given).")
    api.add_argument("--api-port", type=int, default=0, help="Also serve the API alone on this port (0: only "
                     "on the page's port).")
    api.add_argument("--api-key", help="Key(s) the API requires, comma separated, as 'Authorization: Bearer KEY' "
                     "or 'x-api-key: KEY'. Each key counts as one person for the limits.")
    api.add_argument("--admin-key", help="Key that may load and unload models through the API (it also works as "
                     "an API key). Without it the page's rule applies: this machine only, without accounts.")
    api.add_argument("--api-cors-origins", default="", help="Web origins allowed to call the API from a browser "
                     "on --api-port, comma separated. Default: none (CORS off).")
    add_limit_flags(parser)
    return parser


# Flags parsed for compatibility whose feature is not built yet: using one says so.
NOT_YET_IMPLEMENTED = {
}


def not_implemented_messages(args: argparse.Namespace) -> list[str]:
    return [message for name, message in NOT_YET_IMPLEMENTED.items() if getattr(args, name, None)]


def load_settings_from_args(args: argparse.Namespace) -> LoadSettings:
    return LoadSettings(
        loader=args.loader, ctx_size=args.ctx_size, gpu_layers=args.gpu_layers, threads=args.threads,
        threads_batch=args.threads_batch, batch_size=args.batch_size, no_mmap=args.no_mmap,
        mlock=args.mlock, parallel=args.parallel, cache_reuse=args.cache_reuse,
        cache_ram=max(0, args.cache_ram), prefill_chunk=max(0, args.prefill_chunk), cpu=args.cpu,
        bf16=args.bf16,
        cpu_memory=args.cpu_memory, gpu_split=args.gpu_split, load_in_8bit=args.load_in_8bit,
        load_in_4bit=args.load_in_4bit, trust_remote_code=args.trust_remote_code,
        attn_implementation=args.attn_implementation)
