"""Import each named module as a fresh interpreter would, and print the failures as JSON {module: traceback}.

    python import_each.py MODULE...

Every ``import megatron.core.X`` starts by running ``megatron.core``'s own ``__init__``; that (and torch
under it) is done once here, then each module is imported in a forked child of this state, which is what a
fresh interpreter would hold at that point, for a fraction of the cost of one interpreter per module.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback
import warnings

warnings.filterwarnings("ignore")
PRELOADED = "megatron.core"  # the package every module imported here lives in


def main(modules: list[str]) -> None:
    importlib.import_module(PRELOADED)
    failures = {}
    for module in modules:
        failure = _import_in_child(module)
        if failure:
            failures[module] = failure
    print(json.dumps(failures))


def _import_in_child(module: str) -> str:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        try:
            importlib.import_module(module)
            message = b""
        except BaseException:  # noqa: BLE001 - any failure to import is the answer
            message = traceback.format_exc()[-4000:].encode() or b"failed"
        os.write(write_end, message)
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        message = pipe.read()
    _, status = os.waitpid(pid, 0)
    if status and not message:
        message = f"the child died with status {status}".encode()
    return message.decode(errors="replace")


if __name__ == "__main__":
    main(sys.argv[1:])
