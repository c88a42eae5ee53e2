"""The method registry: one file per built-in method, a user's own method registered from outside the package
(decorator, ``--import``, entry point) trains from the CLI, and the trainer has no per-method branches."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import sdpg_train
from sdpg_train import methods
from sdpg_train.config import SDPGConfig
from sdpg_train.methods import BUILTIN_METHODS, Method, get_method, method_names, register_method

ROOT = Path(sdpg_train.__file__).resolve().parents[1]

USER_METHOD = '''
import torch
from sdpg_train.methods import Method, register_method

@register_method("reinforce_test")
class Reinforce(Method):
    """Plain REINFORCE with the group baseline: -A * log p, token mean."""
    token_separable = True

    @classmethod
    def validate(cls, cfg):
        if cfg.alpha != 0:
            raise ValueError("invalid SDPGConfig: reinforce_test needs alpha 0")

    @classmethod
    def compute_loss(cls, cfg, out, mb, beta, num_tokens, **extra):
        per_tok = torch.where(mb.mask, -mb.advantages * out.logp, torch.zeros_like(out.logp))
        loss = per_tok.sum() / num_tokens
        return loss, {"loss/policy": float(loss), "reinforce/called": 1.0, "tokens": float(mb.mask.sum())}
'''


@pytest.fixture
def clean_registry():
    saved = dict(methods._REGISTERED)
    yield
    methods._REGISTERED.clear()
    methods._REGISTERED.update(saved)


@pytest.mark.parametrize("name", sorted(BUILTIN_METHODS))
def test_builtin_method_lives_in_its_own_file(name: str) -> None:
    cls = get_method(name)
    assert issubclass(cls, Method) and cls.name == name
    assert cls.__module__ == f"sdpg_train.methods.{name}"
    assert "compute_loss" in vars(cls) or name == "grpo"  # grpo is SDPG's loss with beta 0


def test_declarations_drive_the_config() -> None:
    assert SDPGConfig(loss="ppo").needs_ref and not SDPGConfig(loss="ppo", kl_coef=0.0).needs_ref
    assert get_method("ppo").needs_value_head(SDPGConfig(loss="ppo"))
    assert SDPGConfig(loss="grpo", beta=1.0).effective_beta_base == 0.0
    assert SDPGConfig(loss="sdpg", beta=0.5).needs_teacher and not SDPGConfig(loss="sdpg", beta=0.0).needs_teacher
    with pytest.raises(ValueError, match="distill_alpha 1"):  # a method's own validate runs with the config's
        SDPGConfig(loss="sdpo", distill_estimator="sampled", distill_alpha=0.5)


def test_register_refuses_clashes_and_non_methods(clean_registry) -> None:
    with pytest.raises(ValueError, match="already exists"):
        register_method("grpo", type("X", (Method,), {}))
    with pytest.raises(TypeError, match="subclass"):
        register_method("not_a_method", object)
    with pytest.raises(ValueError, match="unknown method 'nope'.*register_method"):
        get_method("nope")
    with pytest.raises(ValueError, match="loss must be one of"):
        SDPGConfig(loss="nope")
    mine = register_method("mine_test")(type("Mine", (Method,), {}))
    assert get_method("mine_test") is mine and "mine_test" in method_names()
    assert SDPGConfig(loss="mine_test").loss == "mine_test"


def test_trainer_has_no_per_method_branches() -> None:
    tree = ast.parse((ROOT / "sdpg_train" / "training" / "trainer.py").read_text())
    literals = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert not literals & set(BUILTIN_METHODS)


def test_entry_point_group_adds_a_method(tmp_path, monkeypatch, clean_registry) -> None:
    (tmp_path / "ep_methods_pkg.py").write_text(USER_METHOD.replace("@register_method(\"reinforce_test\")", ""))
    dist = tmp_path / "ep_methods_pkg-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-methods-pkg\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[{methods.ENTRY_POINT_GROUP}]\nep_reinforce = ep_methods_pkg:Reinforce\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "ep_reinforce" in method_names()
    cls = get_method("ep_reinforce")
    assert cls.__name__ == "Reinforce" and cls.name == "ep_reinforce"


@pytest.mark.timeout(300)
def test_user_method_from_outside_the_package_trains_from_the_cli(tmp_path) -> None:
    (tmp_path / "my_methods.py").write_text(textwrap.dedent(USER_METHOD))
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "sdpg_train.cli", "train", "--import", "my_methods", "--loss", "reinforce_test",
           "--alpha", "0", "--model_name_or_path", "tiny", "--device", "cpu", "--max_steps", "2",
           "--num_prompts_per_step", "2", "--num_generations", "2", "--max_completion_length", "4",
           "--learning_rate", "1e-3", "--output_dir", str(out), "--disable_tqdm", "--save_final", "false"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["step"] == 2
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and all(r["reinforce/called"] == 1.0 for r in rows)
    bad = subprocess.run([*cmd[:4], "--import", "no_such_module_xyz", "--loss", "reinforce_test"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--import no_such_module_xyz" in bad.stderr and "Traceback" not in bad.stderr
