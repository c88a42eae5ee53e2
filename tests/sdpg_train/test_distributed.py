"""Two CPU processes over gloo via ``torch.distributed.run``: different data per rank, identical parameters."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]

WORKER = textwrap.dedent('''
    import json, sys
    import torch
    from sdpg_train.config import SDPGConfig
    from sdpg_train.training.distributed import cleanup
    from sdpg_train.training.trainer import SDPGTrainer

    out = sys.argv[1]
    cfg = SDPGConfig(model_name_or_path="tiny", device="cpu", num_prompts_per_step=1, num_generations=4,
                     max_completion_length=8, max_steps=2, learning_rate=1e-3, beta=0.5, alpha=0.01,
                     max_context_length=32, output_dir=out + "/run", disable_tqdm=True, save_final=True)
    trainer = SDPGTrainer(args=cfg)
    init = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    trainer.train()
    rank = trainer.dist.rank
    torch.save({"init": init, "final": trainer.model.state_dict()}, f"{out}/params_{rank}.pt")
    problems = [p.id for p in trainer._rollout(1).problems]
    json.dump({"world": trainer.dist.world_size, "problems": problems}, open(f"{out}/rank_{rank}.json", "w"))
    cleanup(trainer.dist)
''')


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_two_gloo_ranks_stay_in_sync(tmp_path):
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(worker),
           str(tmp_path)]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json

    r0, r1 = (json.loads((tmp_path / f"rank_{r}.json").read_text()) for r in (0, 1))
    assert r0["world"] == r1["world"] == 2
    assert r0["problems"] != r1["problems"]  # each rank trains on its own prompts
    p0, p1 = (torch.load(tmp_path / f"params_{r}.pt") for r in (0, 1))
    changed = [k for k in p0["final"] if not torch.equal(p0["final"][k], p0["init"][k])]
    assert changed, "training did not change any parameter"
    for k in p0["final"]:
        assert torch.equal(p0["final"][k], p1["final"][k]), f"ranks diverged on {k}"
    ckpt = tmp_path / "run" / "checkpoint-2"
    assert (ckpt / "rng_state.pth").is_file() and (ckpt / "rng_state_1.pth").is_file()
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 2  # rank 0 logs alone
