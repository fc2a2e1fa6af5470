"""Run a notebook with papermill so that kernels started at the same moment cannot collide.

Why: jupyter_client picks a kernel's five TCP ports by binding port 0, reading the port and closing
the socket; the kernel binds it later (``jupyter_client.connect.write_connection_file``). Another
kernel started meanwhile (Snakemake runs notebooks in parallel, a cluster node runs several jobs)
can be handed the same port: one kernel fails with "Address already in use" or never answers
(jupyter_client#487, papermill#511). ``LocalPortCache`` only guards kernels of one process.

What: the kernel talks over Unix sockets (ZeroMQ ``ipc`` transport) in a private folder made for
this run by ``mkdtemp`` (a new name, mode 0700) under the local temporary folder, so no other
kernel, on this machine or another, can pick the same address. The folder also holds the
connection file; both go when the kernel has stopped. The executed notebook is written under a
temporary name beside ``output_path`` and renamed only once every cell has run.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from pathlib import Path

_MAX_SOCKET_DIR = 80  # a Unix socket path holds at most 107 bytes; the folder adds ~14, the name ~8


def _socket_root() -> str:
    """The local temporary folder, or /tmp when $TMPDIR is too long for socket paths."""
    root = tempfile.gettempdir()
    return root if len(root) <= _MAX_SOCKET_DIR else "/tmp"


@contextlib.contextmanager
def private_kernel_config():
    """A traitlets ``Config`` for the kernels started inside this block: ZeroMQ ``ipc`` sockets in
    a private folder of their own (see the module docstring), removed afterwards."""
    from traitlets.config import Config

    with tempfile.TemporaryDirectory(prefix="nbk-", dir=_socket_root(), ignore_cleanup_errors=True) as private:
        yield Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(private, "k"),
                                        "connection_file": os.path.join(private, "k.json")}})


def execute_notebook(input_path, output_path, *, parameters=None, parameters_file=None, cwd=None,
                     kernel_name="python3", log_output=False):
    """Execute ``input_path`` into ``output_path`` with papermill; returns the executed notebook.

    ``parameters_file``: a YAML file of parameters (papermill's ``-f``); ``parameters`` override
    it. ``cwd``: the kernel's working folder. A failing cell raises papermill's
    ``PapermillExecutionError``; ``output_path`` is not written, and the notebook as far as it
    ran, its error included, is left at :func:`failed_path` for inspection.
    """
    import papermill
    from papermill.iorw import read_yaml_file, write_ipynb

    params = dict(read_yaml_file(str(parameters_file)) or {}) if parameters_file else {}
    params.update(parameters or {})
    out = Path(output_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(f".{out.name}.{os.getpid()}-{secrets.token_hex(4)}.part.ipynb")
    try:
        with private_kernel_config() as config:
            nb = papermill.execute_notebook(str(input_path), str(part), parameters=params,
                                            kernel_name=kernel_name, cwd=None if cwd is None else str(cwd),
                                            log_output=log_output, config=config)
        nb.metadata.papermill["output_path"] = str(out)  # not the temporary name
        write_ipynb(nb, str(part))
        os.replace(part, out)
    except BaseException:
        if part.exists():  # what ran, with the error in its cell: <name>.failed.ipynb, never <name>
            os.replace(part, failed_path(out))
        raise
    return nb


def failed_path(output_path) -> Path:
    """Where a run that stopped at an error leaves its partly executed notebook."""
    out = Path(output_path)
    return out.with_name(f"{out.stem}.failed.ipynb")
