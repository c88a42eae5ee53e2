"""FSDP2 (``fully_shard``) under torchrun on CPU (gloo): the same training as DDP, sharded checkpoints that resume
exactly and a gathered ``model.safetensors`` that ``from_pretrained`` loads."""

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
    import sys, torch
    from pathlib import Path
    from sdpg_train.training.checkpoint import full_model_state
    from sdpg_train.config import SDPGConfig
    from sdpg_train.training.distributed import cleanup
    from sdpg_train.trainer import SDPGTrainer

    out, strategy = Path(sys.argv[1]), sys.argv[2]

    def cfg(name, **kw):
        return SDPGConfig(model_name_or_path="tiny", device="cpu", num_prompts_per_step=1, num_generations=4,
                          max_completion_length=8, max_steps=4, learning_rate=1e-3, beta=0.5, alpha=0.01,
                          max_context_length=32, output_dir=str(out / strategy / name), disable_tqdm=True,
                          save_final=False,
                          distributed_strategy=strategy, lr_scheduler_type="cosine", warmup_steps=2, **kw)

    def params(trainer):
        return full_model_state(trainer.policy) if trainer.sharded else dict(trainer.model.state_dict())

    full = SDPGTrainer(args=cfg("full"))
    full.train()
    result = {"full": params(full), "sharded": full.sharded}
    if strategy == "fsdp":
        first = SDPGTrainer(args=cfg("half"))
        for k in (1, 2):
            first.step(k)
            first.global_step = k
        first.save_checkpoint()
        resumed = SDPGTrainer(args=cfg("half"))
        resumed.train(resume_from_checkpoint=True)
        result["resumed"] = params(resumed)
    if full.dist.rank == 0:
        torch.save(result, out / f"{strategy}.pt")
    cleanup(full.dist)
''')


def launch(tmp_path: Path, strategy: str) -> dict:
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(worker),
           str(tmp_path), strategy]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return torch.load(tmp_path / f"{strategy}.pt")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_fsdp2_trains_like_ddp_and_resumes_exactly_from_sharded_checkpoints(tmp_path):
    from transformers import AutoModelForCausalLM

    fsdp = launch(tmp_path, "fsdp")
    ddp = launch(tmp_path, "ddp")
    assert fsdp["sharded"] and not ddp["sharded"]
    for k, v in ddp["full"].items():  # same data, same loss scale: the same parameters up to reduction order
        torch.testing.assert_close(fsdp["full"][k], v, rtol=1e-4, atol=1e-6, msg=lambda m, k=k: f"{k}: {m}")
    for k, v in fsdp["full"].items():  # sharded save + resume is exact
        assert torch.equal(fsdp["resumed"][k], v), k
    ckpt = tmp_path / "fsdp" / "half" / "checkpoint-2"
    assert (ckpt / "sharded").is_dir() and not (ckpt / "optimizer.pt").exists()
    assert (ckpt / "rng_state.pth").is_file() and (ckpt / "rng_state_1.pth").is_file()
    plain = AutoModelForCausalLM.from_pretrained(ckpt)  # the gathered full weights
    assert sum(p.numel() for p in plain.parameters()) == sum(v.numel() for k, v in fsdp["full"].items()
                                                             if "lm_head" not in k)
