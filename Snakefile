# Runs every notebook of one profile with papermill, then indexes the results.
#   snakemake --cores all --config profile=demo          (what `make results` does)
#   snakemake --cores all --config profile=paper data_root=/data --resources gpu=1
#   snakemake --executor slurm --jobs 8 --config profile=paper ...   (see README.md)
import shlex
import sys
from pathlib import Path

PROFILE = config.get("profile", "demo")
DATA_ROOT = str(Path(config["data_root"]).resolve()) if config.get("data_root") else ""
NOTEBOOKS = sorted(p.stem for p in Path("notebooks").glob("*.ipynb"))
GPU = 1 if PROFILE == "paper" else 0
PY = shlex.quote(sys.executable)  # the environment snakemake runs in (the study's .venv)


rule all:
    input:
        "results/README.md",


rule index:
    input:
        expand("results/{profile}/{nb}/{nb}.ipynb", profile=PROFILE, nb=NOTEBOOKS),
    output:
        "results/README.md",
    shell:
        f"{PY} -m lib index results"


rule notebook:
    input:
        nb="notebooks/{nb}.ipynb",
        params="notebooks/params/{nb}/{profile}.yaml",
    output:
        "results/{profile}/{nb}/{nb}.ipynb",
    log:
        "results/{profile}/{nb}/papermill.log",
    threads: min(8, workflow.cores) if GPU else workflow.cores  # CPU runs: one notebook at a time, all cores
    resources:
        gpu=GPU,
    params:
        data_root=f"-p data_root {DATA_ROOT}" if DATA_ROOT else "",
    shell:
        # written under a temporary name, renamed when the whole notebook has run
        f"OMP_NUM_THREADS={{threads}} {PY} -m papermill {{input.nb}} {{output}}.part.ipynb -f {{input.params}} -k python3 --cwd notebooks"
        " -p results_dir $PWD/results/{wildcards.profile}/{wildcards.nb} {params.data_root} > {log} 2>&1"
        " && mv {output}.part.ipynb {output}"
