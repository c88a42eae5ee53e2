"""The docs a newcomer follows: no references outside the repository, examples that run as written, and the
README and ``--help`` telling the same story."""

from __future__ import annotations

import json
import re
from pathlib import Path

import gymnasium as gym

import sdpg_envs  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]


def test_docs_reference_nothing_outside_the_repository():
    outside = []
    for page in PAGES:
        text = page.read_text()
        outside += [f"{page.name}: {m}" for m in re.findall(r"\.\./shared/docs/\S+", text)]
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path = (page.parent / target).resolve()
            if not path.exists() or ROOT.resolve() not in path.parents:
                outside.append(f"{page.name}: {target}")
    assert not outside


def test_env_kwargs_example_makes_the_env():
    from sdpg_train.config import SDPGConfig, _field_docs

    text = _field_docs()["env_kwargs"] + (ROOT / "docs" / "training.md").read_text().split("| `env_kwargs` |")[1]
    examples = re.findall(r"``(\{\"sdpg/.*?\}\})``", text)
    assert len(examples) == 2
    for example in examples:
        kwargs = json.loads(example)
        assert SDPGConfig(env_kwargs=kwargs).env_kwargs == kwargs
        for env_id, env_kwargs in kwargs.items():
            gym.make(env_id, **env_kwargs).close()


def test_readme_lists_every_command():
    from sdpg_train.cli import COMMANDS

    section = (ROOT / "README.md").read_text().split("## Command line", 1)[1].split("\n## ", 1)[0]
    assert [c for c in COMMANDS if f"`{c}" not in section] == []


def test_demo_quick_duration_is_the_same_in_readme_and_help():
    import argparse

    from sdpg_train.commands import demo

    parser = argparse.ArgumentParser()
    demo.configure(parser)
    help_text = next(a.help for a in parser._actions if "--quick" in a.option_strings)
    readme = (ROOT / "README.md").read_text()
    said = re.search(r"`--quick` is the CI version: (about \d+ minutes? on 2 idle cores)", readme)
    assert said and said.group(1) in " ".join(help_text.split())


def test_trl_examples_pass_the_tokenizer_like_the_runnable_example():
    text = (ROOT / "docs" / "trl.md").read_text()
    calls = re.findall(r"(?:GRPOTrainer|SDPOTrainer)\((?:[^()]|\([^()]*\))*\)", text)
    calls = [c for c in calls if "model=" in c]  # constructions, not prose mentions
    assert len(calls) >= 2 and all("processing_class=" in c for c in calls)
    assert "processing_class=load_tokenizer" in (ROOT / "examples" / "trl_reward.py").read_text()
