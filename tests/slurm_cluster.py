"""A throwaway one-node SLURM cluster on loopback, for tests that submit work through sbatch.

The workflow is meant to run on a SLURM cluster, so CI should submit to a real scheduler rather
than trust a mock. The fixture reuses a cluster that already answers `sinfo`; otherwise it
installs Debian's packages if needed and starts its own munged, slurmctld and slurmd in the
foreground, on free ports and a private munge socket, so a system-wide daemon is never touched.

Its slurm.conf must sit at the compiled-in default, /etc/slurm/slurm.conf: snakemake's jobstep
executor strips every SLURM_* variable, SLURM_CONF included, before calling `srun` inside the
job, so a config elsewhere is invisible there. The fixture writes that file only when none exists
(or when it is its own leftover) and removes it at teardown; everything else (munge key, state,
spool, logs) lives in a pytest temporary folder.

What the tests must do: run sbatch/squeue/snakemake with `cluster.env` and submit to
`cluster.partition`. The cluster has no accounting database, so `sacct` cannot answer; snakemake
needs `--slurm-status-command squeue` (and MinJobAge, 300 s here, must stay at least 3x
`--slurm-init-seconds-before-status-checks`, or the plugin silently falls back to sacct).

Skips only when SLURM cannot be had (not installed and no root/apt, or someone else's config in
the way); a cluster that is installed but does not come up is a failure, with log tails shown.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]
DAEMONS = ["munged", "slurmctld", "slurmd", "sbatch", "sinfo", "squeue"]
INSTALL_HINT = "apt-get install -y " + " ".join(PACKAGES)
PARTITION = "debug"
CONF = Path("/etc/slurm/slurm.conf")
MARK = "# written by tests/slurm_cluster.py for a throwaway test cluster; removed at teardown\n"
UP_TIMEOUT_S = 60
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin", "/sbin"])


@dataclass
class SlurmCluster:
    """What a test needs to submit: the partition, and the environment for SLURM's clients."""

    partition: str
    env: dict  # os.environ with /usr/sbin on PATH (and SLURM_CONF=/etc/slurm/slurm.conf when ours)
    conf: Path | None  # our slurm.conf; None when an existing cluster was reused
    started: bool  # False when an existing cluster was reused


def _which(name: str) -> str | None:
    return shutil.which(name, path=SEARCH_PATH)


def _tail(path: Path, lines: int = 25) -> str:
    text = path.read_text(errors="replace") if path.exists() else "(missing)"
    return f"--- {path.name} ---\n" + "\n".join(text.splitlines()[-lines:])


def _install() -> None:
    """Install the Debian packages, or skip if this machine cannot (not root, no apt)."""
    missing = [n for n in DAEMONS if _which(n) is None]
    if not missing:
        return
    if os.geteuid() != 0 or _which("apt-get") is None:
        pytest.skip(f"SLURM not installed ({', '.join(missing)} missing) and cannot install it here "
                    f"(needs root and apt-get); install with: {INSTALL_HINT}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if run.returncode != 0:  # stale package lists: refresh once and retry
        subprocess.run(["apt-get", "update"], env=env, capture_output=True)
        run = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if run.returncode != 0:
        pytest.skip(f"could not install SLURM ({INSTALL_HINT}):\n" + (run.stdout + run.stderr)[-2000:])


def _existing_partition(env: dict) -> str | None:
    """The default partition of a cluster that already answers, if any."""
    if _which("sinfo") is None:
        return None
    try:
        run = subprocess.run([_which("sinfo"), "-h", "-o", "%P"], env=env, capture_output=True,
                             text=True, timeout=15)
    except subprocess.TimeoutExpired:
        return None
    names = run.stdout.split() if run.returncode == 0 else []
    return next((n.rstrip("*") for n in names if n.endswith("*")), names[0] if names else None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_config(d: Path) -> None:
    """slurm.conf for one node (this host, as `slurmd -C` sees it) reached on 127.0.0.1."""
    host = socket.gethostname().split(".")[0]
    probe = subprocess.run([_which("slurmd"), "-C"], capture_output=True, text=True)
    node = probe.stdout.splitlines()[0] if probe.returncode == 0 else f"NodeName={host} CPUs={os.cpu_count()}"
    for sub in ("state", "spool"):
        (d / sub).mkdir()
    CONF.parent.mkdir(parents=True, exist_ok=True)
    CONF.write_text(MARK + f"""\
ClusterName=pytest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={d}/munge.socket
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
# no cgroups: containers rarely delegate them
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
# finished jobs stay visible to squeue this long (snakemake's squeue status needs it)
MinJobAge=300
{node} NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName={PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""")


def _node_state(env: dict) -> str:
    try:
        run = subprocess.run([_which("sinfo"), "-h", "-N", "-o", "%T"], env=env, capture_output=True,
                             text=True, timeout=15)
    except subprocess.TimeoutExpired:
        return ""
    return run.stdout.strip() if run.returncode == 0 else ""


def _stop(procs: list, env: dict) -> None:
    """Cancel what is left in our cluster, then stop our daemons (newest first)."""
    try:
        jobs = subprocess.run([_which("squeue"), "-h", "-o", "%i"], env=env, capture_output=True,
                              text=True, timeout=15).stdout.split()
        if jobs:
            subprocess.run([_which("scancel"), *jobs], env=env, capture_output=True, timeout=15)
    except (subprocess.TimeoutExpired, OSError):
        pass  # controller already gone: nothing to cancel
    for p in reversed(procs):
        p.terminate()
    for p in reversed(procs):
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """Session-wide SLURM cluster; yields a SlurmCluster (partition, env, conf, started)."""
    env = dict(os.environ, PATH=SEARCH_PATH)
    partition = _existing_partition(env)
    if partition:
        yield SlurmCluster(partition, env, None, started=False)
        return
    _install()
    if os.geteuid() != 0:
        pytest.skip("SLURM is installed but no cluster answers `sinfo`, and starting one needs root")

    if CONF.exists() and not CONF.read_text().startswith(MARK):
        pytest.skip(f"{CONF} exists but no cluster answers `sinfo`: start that cluster, or move the "
                    "file away so this fixture can write its own")

    d = tmp_path_factory.mktemp("slurm")
    d.chmod(0o700)  # munged refuses keys and sockets in folders others can write
    key = d / "munge.key"
    key.write_bytes(secrets.token_bytes(1024))
    key.chmod(0o400)
    env["SLURM_CONF"] = str(CONF)
    logs = [d / "slurmctld.log", d / "slurmd.log", d / "daemons.out"]  # munged logs to daemons.out
    procs = []
    out = open(d / "daemons.out", "w")
    try:
        _write_config(d)
        procs.append(subprocess.Popen(
            [_which("munged"), "--foreground", "--force", f"--key-file={key}", f"--socket={d}/munge.socket",
             f"--pid-file={d}/munged.pid", f"--seed-file={d}/munge.seed"],
            stdout=out, stderr=subprocess.STDOUT))
        for daemon in ("slurmctld", "slurmd"):
            procs.append(subprocess.Popen([_which(daemon), "-D"], env=env,
                                          stdout=out, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + UP_TIMEOUT_S
        while (state := _node_state(env)) != "idle":
            dead = [p.args[0] for p in procs if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                why = f"{', '.join(dead)} exited" if dead else f"node not idle after {UP_TIMEOUT_S} s"
                pytest.fail(f"SLURM cluster did not come up ({why}; last state {state!r}); "
                            f"files in {d}\n" + "\n".join(_tail(p) for p in logs), pytrace=False)
            time.sleep(0.5)
        yield SlurmCluster(PARTITION, env, CONF, started=True)
    finally:
        _stop(procs, env)
        out.close()
        CONF.unlink(missing_ok=True)
