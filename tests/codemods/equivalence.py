"""Run every top-level function of a module under dense and MLA configs; print the results as JSON.

``python equivalence.py DIR MODULE`` imports MODULE from DIR in this fresh interpreter (so the rewritten
module and its adapter must import on their own) and calls each function whose parameters it knows how
to fill, once per config (dense, MLA with and without q LoRA, with the latent cache, MLA fields holding
truthy or falsy values that are no bools, a config without them). A ``config``/``cfg``/``args`` is an
object with attributes; a ``hf_config``/``source_config`` (a config read by key, as checkpoint converters
read Hugging Face's) is each config as a plain dict, as a read-only ``Mapping`` subclass, and as a dataclass
(not subscriptable: its reads raise). Results, yielded values, exceptions, the configs' state afterwards and
the side-effect log are normalized to plain data, so that the outputs of the original and the rewritten
module compare with ``==``. The log records, in order, every attribute read of a config, every key the
``Mapping`` is asked for (``get``, ``in`` and subscripts all ask ``__getitem__``) and every method looked up on
it, and every call of the ``log`` parameter: a rewrite that evaluates operands in another order, more or fewer
times, shows there. Coroutine functions run to completion.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import inspect
import itertools
import json
import sys
import types
from collections.abc import Mapping

BASE = {
    "num_layers": 2, "hidden_size": 16, "num_attention_heads": 4, "kv_channels": 8, "qk_head_dim": 8,
    "qk_pos_emb_head_dim": 4, "v_head_dim": 8, "kv_lora_rank": 6, "recompute_modules": [],
    "cache_mla_latents": False, "rotary_interleaved": False,
}  # fmt: skip
CONFIGS = {
    "dense-rope": {**BASE, "multi_latent_attention": False, "q_lora_rank": None, "position_embedding_type": "rope"},
    "dense-learned": {**BASE, "multi_latent_attention": False, "q_lora_rank": None,
                      "position_embedding_type": "learned_absolute", "recompute_modules": ["mla_up_proj"]},
    "mla": {**BASE, "multi_latent_attention": True, "q_lora_rank": None, "position_embedding_type": "rope",
            "cache_mla_latents": True},
    "mla-lora": {**BASE, "multi_latent_attention": True, "q_lora_rank": 3, "position_embedding_type": "rope",
                 "recompute_modules": ["mla_up_proj"]},
    # truthy and falsy values that are no bools (a fork's `1`, a YAML "yes", a zero rank), and a config
    # without the MLA fields at all: a predicate returns the value it read, and raises where the read does
    "mla-truthy": {**BASE, "multi_latent_attention": 1, "q_lora_rank": 0, "kv_lora_rank": 0,
                   "position_embedding_type": "rope", "cache_mla_latents": "yes"},
    "dense-none": {**BASE, "multi_latent_attention": None, "kv_lora_rank": None, "q_lora_rank": None,
                   "position_embedding_type": None, "cache_mla_latents": None},
    "bare": {"num_layers": 2, "hidden_size": 16},
}  # fmt: skip
CONFIG_PARAMETERS = {"config", "cfg", "args"}
KEYED_PARAMETERS = {"hf_config", "source_config"}
KEYED_KINDS = ("dict", "mapping", "dataclass")
OTHER_PARAMETERS = {
    "layers": [[1, 2, 3], 3],
    "count": [4],
    "layer_number": [1],
    "names": [["q", "kv", "proj"]],
    "flag": [True, False],
    "multi_latent_attention": [True, False],
    "configs": ["configs"],
    "value": [0, 5],
    "x": [0, 5],
    "y": [1, -2],
    "log": ["log"],
}


class Config(types.SimpleNamespace):
    """A config that writes every attribute read of its own to the shared side-effect log."""

    def __getattribute__(self, name):
        if not name.startswith("__"):
            EVENTS.append(["read", name])
        return super().__getattribute__(name)


class KeyedConfig(Mapping):
    """A read-only mapping config that writes every key it is asked for, and every method it is asked for
    (``get``: looked up before its default is evaluated), to the shared side-effect log."""

    def __init__(self, fields: dict) -> None:
        self._fields = fields

    def __getattribute__(self, name):
        if not name.startswith("_"):
            EVENTS.append(["attribute", name])
        return super().__getattribute__(name)

    def __getitem__(self, key):
        EVENTS.append(["getitem", repr(key)])
        return self._fields[key]

    def __iter__(self):
        EVENTS.append(["iter"])
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)


EVENTS: list = []


def log(value=None):
    """A parameter builders call to leave a side effect: logged, and returned."""
    EVENTS.append(["log", normalize(value)])
    return value


def normalize(value, depth=0):
    if depth > 6:
        return repr(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [type(value).__name__, [normalize(item, depth + 1) for item in value]]
    if isinstance(value, dict):
        return ["dict", sorted((repr(k), normalize(v, depth + 1)) for k, v in value.items())]
    if isinstance(value, types.GeneratorType):
        return ["generator", [normalize(item, depth + 1) for item in itertools.islice(value, 50)]]
    if isinstance(value, Config):
        return ["config", state(value)]
    if isinstance(value, KeyedConfig):
        return ["mapping", normalize(value._fields, depth + 1)]
    if isinstance(value, type):
        return ["class", value.__name__]
    if callable(value) and not hasattr(value, "__dict__"):
        return ["callable"]
    return [type(value).__name__, normalize(getattr(value, "__dict__", repr(value)), depth + 1)]


def config_object(name):
    return Config(**{key: list(v) if isinstance(v, list) else v for key, v in CONFIGS[name].items()})


def state(value):
    """A config's fields without logging the reads."""
    return normalize(object.__getattribute__(value, "__dict__")) if isinstance(value, Config) else normalize(value)


def keyed_config(kind, name):
    fields = {key: list(v) if isinstance(v, list) else v for key, v in CONFIGS[name].items()}
    if kind == "dict":
        return fields
    if kind == "mapping":
        return KeyedConfig(fields)
    return dataclasses.make_dataclass("DataclassConfig", list(fields))(**fields)


def argument(choice):
    if isinstance(choice, tuple):
        return keyed_config(*choice)
    if isinstance(choice, str) and choice in CONFIGS:
        return config_object(choice)
    if choice == "configs":
        return [config_object("mla"), config_object("dense-rope")]
    if choice == "log":
        return log
    return choice


def calls(function):
    names = list(inspect.signature(function).parameters)
    if not names or not all(n in CONFIG_PARAMETERS or n in KEYED_PARAMETERS or n in OTHER_PARAMETERS for n in names):
        return
    keyed = list(itertools.product(KEYED_KINDS, CONFIGS))
    choices = [
        list(CONFIGS) if n in CONFIG_PARAMETERS else keyed if n in KEYED_PARAMETERS else OTHER_PARAMETERS[n]
        for n in names
    ]
    yield from itertools.product(*choices)


def run(directory, module_name):
    sys.path.insert(0, directory)
    return behaviour(importlib.import_module(module_name))


def behaviour(module):
    """Every call of every function ``module`` defines that the harness can fill, with its outcome."""
    results = []
    for name, function in sorted(vars(module).items()):
        if not inspect.isfunction(function) or function.__module__ != module.__name__:
            continue
        for combination in calls(function):
            arguments = [argument(choice) for choice in combination]
            EVENTS.clear()
            try:
                value = function(*arguments)
                if inspect.iscoroutine(value):
                    value = asyncio.run(value)
                outcome = ["returns", normalize(value)]
            except Exception as exc:  # noqa: BLE001 - the exception is part of the behaviour compared
                outcome = ["raises", type(exc).__name__, str(exc)]
            results.append([name, repr(combination), outcome, [state(a) for a in arguments], list(EVENTS)])
    return results


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1], sys.argv[2])))
