"""Math answer verifier: extraction, normalisation, an own LaTeX parser, exact-first equivalence and sympy in
killable worker processes. See ``docs/math_verifier.md``.

>>> from sdpg_envs.verifiers.math import verify_math
>>> verify_math("1/2", "so the answer is \\\\boxed{\\\\frac{2}{4}}").score
1.0
"""

from sdpg_envs.verifiers.math.extract import Extraction, extract_answer
from sdpg_envs.verifiers.math.options import MathOptions
from sdpg_envs.verifiers.math.pool import WorkerPool, default_pool
from sdpg_envs.verifiers.math.verifier import MathVerdict, MathVerifier, to_result, verify_math

__all__ = [
    "Extraction",
    "MathOptions",
    "MathVerdict",
    "MathVerifier",
    "WorkerPool",
    "default_pool",
    "extract_answer",
    "to_result",
    "verify_math",
]
