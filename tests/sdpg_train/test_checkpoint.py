"""Checkpoints: HF layout loadable by from_pretrained, full state round trip, rotation, atomic writes."""

from __future__ import annotations

import json
import random

import numpy as np
import torch
from transformers import AutoModelForCausalLM

from sdpg_train.tiny import load_tokenizer, tiny_causal_lm
from sdpg_train.training.checkpoint import (
    last_checkpoint,
    list_checkpoints,
    load_checkpoint,
    rotate_checkpoints,
    save_checkpoint,
)


def _optim(model):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1.0 / (k + 1))
    model(torch.tensor([[5, 6, 7]])).logits.sum().backward()
    opt.step()
    sched.step()
    return opt, sched


def test_round_trip_restores_everything(tmp_path, tiny_model, tokenizer):
    opt, sched = _optim(tiny_model)
    torch.manual_seed(123)
    random.seed(4)
    np.random.seed(5)
    path = save_checkpoint(tmp_path, 7, model=tiny_model, tokenizer=tokenizer, optimizer=opt, scheduler=sched,
                           trainer_state={"note": "x"})
    expected = (torch.rand(3), random.random(), np.random.rand())
    assert path.name == "checkpoint-7"
    for name in ("model.safetensors", "config.json", "optimizer.pt", "scheduler.pt", "rng_state.pth",
                 "trainer_state.json", "tokenizer_config.json"):
        assert (path / name).is_file(), name
    assert json.loads((path / "trainer_state.json").read_text())["global_step"] == 7
    assert not list(tmp_path.glob(".tmp-*"))  # written atomically
    # the folder is a plain HF model folder
    loaded = AutoModelForCausalLM.from_pretrained(path)
    ids = torch.tensor([[3, 4, 5, 6]])
    torch.testing.assert_close(loaded(ids).logits, tiny_model(ids).logits)
    assert load_tokenizer(str(path))("hi", add_special_tokens=False)["input_ids"] == [107, 108]
    # restore into a fresh model/optimizer: weights, optimizer moments, schedule and RNG come back
    fresh = tiny_causal_lm(seed=99)
    opt2 = torch.optim.AdamW(fresh.parameters(), lr=1e-2)
    sched2 = torch.optim.lr_scheduler.LambdaLR(opt2, lambda k: 1.0 / (k + 1))
    state = load_checkpoint(path, model=fresh, optimizer=opt2, scheduler=sched2)
    assert state["global_step"] == 7 and state["note"] == "x"
    for a, b in zip(tiny_model.state_dict().values(), fresh.state_dict().values()):
        assert torch.equal(a, b)
    s1, s2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert all(torch.equal(s1[k]["exp_avg"], s2[k]["exp_avg"]) for k in s1)
    assert sched2.get_last_lr() == sched.get_last_lr()
    assert torch.equal(torch.rand(3), expected[0]) and random.random() == expected[1]
    assert np.random.rand() == expected[2]


def test_rotation_and_incomplete_folders(tmp_path, tiny_model, tokenizer):
    opt, sched = _optim(tiny_model)
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, model=tiny_model, tokenizer=None, optimizer=opt, scheduler=sched,
                        trainer_state={}, save_total_limit=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-2", "checkpoint-3"]
    (tmp_path / "checkpoint-9").mkdir()  # no trainer_state.json: not a complete checkpoint
    assert last_checkpoint(tmp_path).name == "checkpoint-3"
    assert [p.name for p in rotate_checkpoints(tmp_path, 1)] == ["checkpoint-2"]
    assert last_checkpoint(tmp_path / "nothing") is None
