"""An iterative-repair episode, driven by a scripted "model": the loop a multi-turn trainer or evaluator runs.

Run: ``python examples/repair_loop.py``. Each attempt is verified in the sandbox (gcc for C); a failure with
attempts left returns the feedback as the next observation, which is appended to the conversation before the
next attempt. Swap ``attempts`` for a model's generations (``messages`` is what a chat model would see).
"""

from __future__ import annotations

import gymnasium as gym

import sdpg_envs  # noqa: F401 - registers the sdpg/* ids


def main() -> None:
    env = gym.make("sdpg/CFuncRepair-v0", split="eval", observation="chat", max_attempts=3, discount=0.8)
    obs, info = env.reset(options={"index": 0})  # gcd
    messages = list(obs)
    attempts = iter([
        "```c\nint gcd(int a, int b) {\n    return a % b\n}\n```",  # compile error
        "```c\nint gcd(int a, int b) {\n    return a % b;\n}\n```",  # wrong answer
        "```c\nint gcd(int a, int b) {\n    while (b) { int t = a % b; a = b; b = t; }\n    return a;\n}\n```",
    ])
    terminated = False
    while not terminated:
        completion = next(attempts)  # a model would generate this from `messages`
        messages.append({"role": "assistant", "content": completion})
        obs, reward, terminated, truncated, info = env.step(completion)
        messages += obs  # the feedback (nothing once the episode is over)
        print(f"attempt {info['attempt']}: {info['verifier']['status']}, reward {reward}")
        # info["privileged_context"]: the reference + this attempt's feedback, for a self-teacher
    assert messages == env.unwrapped.messages()
    print("\n---\n".join(f"[{m['role']}]\n{m['content']}" for m in messages))
    env.close()


if __name__ == "__main__":
    main()
