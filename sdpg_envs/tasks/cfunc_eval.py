"""The fixed CFunc evaluation set: 18 hand-written C problems, each with a C reference solution, a Python oracle
(with C's semantics) that computes the expected outputs, and test inputs that include the edge cases.

``tests/sdpg_envs/test_cfunc.py`` compiles every reference with gcc in the sandbox and checks it passes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EvalProblem:
    """One hand-written problem: ``name`` is the C function's name; ``inputs`` one argument tuple per test."""

    name: str
    signature: str
    words: str
    solution: str
    oracle: Callable[..., Any]
    inputs: tuple[tuple[Any, ...], ...]


def _is_prime(n: int) -> int:
    return int(n >= 2 and all(n % d for d in range(2, math.isqrt(n) + 1)))


def _fib(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def _collatz(n: int) -> int:
    steps = 0
    while n != 1:
        n, steps = (n // 2 if n % 2 == 0 else 3 * n + 1), steps + 1
    return steps


def _second_largest(xs: list[int]) -> int:
    return sorted(set(xs))[-2]


def _inversions(xs: list[int]) -> int:
    return sum(xs[i] > xs[j] for i in range(len(xs)) for j in range(i + 1, len(xs)))


def _kadane(xs: list[int]) -> int:
    return max(sum(xs[i:j]) for i in range(len(xs)) for j in range(i + 1, len(xs) + 1))


def _digital_root(n: int) -> int:
    while n >= 10:
        n = sum(int(c) for c in str(n))
    return n


def _longest_run(s: str) -> int:
    best = run = 0
    for i, ch in enumerate(s):
        run = run + 1 if i and s[i - 1] == ch else 1
        best = max(best, run)
    return best


def _caesar(s: str) -> str:
    return "".join(chr((ord(c) - 97 + 3) % 26 + 97) if "a" <= c <= "z" else c for c in s)


EVAL_PROBLEMS: tuple[EvalProblem, ...] = (
    EvalProblem("gcd", "int(int,int)", "returns the greatest common divisor of the positive integers a and b",
                "int gcd(int a, int b) {\n    while (b) { int t = a % b; a = b; b = t; }\n    return a;\n}\n",
                math.gcd, ((12, 18), (7, 13), (100, 75), (1, 1), (36, 36), (270, 192))),
    EvalProblem("is_prime", "int(int)", "returns 1 if x is a prime number and 0 otherwise (x may be zero or negative)",
                "int is_prime(int x) {\n    if (x < 2) return 0;\n    for (int d = 2; d <= x / d; d++)\n"
                "        if (x % d == 0) return 0;\n    return 1;\n}\n",
                _is_prime, ((-7,), (0,), (1,), (2,), (3,), (15,), (17,), (97,), (100,), (7919,), (2147483647,))),
    EvalProblem("fib", "int(int)", "returns the x-th Fibonacci number, where fib(0) = 0 and fib(1) = 1 (0 <= x <= 40)",
                "int fib(int x) {\n    int a = 0, b = 1;\n    while (x-- > 0) { int t = a + b; a = b; b = t; }\n"
                "    return a;\n}\n", _fib, ((0,), (1,), (2,), (10,), (30,), (40,))),
    EvalProblem("collatz_steps", "int(int)",
                "returns how many steps the Collatz map (x / 2 when x is even, 3 * x + 1 when odd) takes to reach 1 "
                "from x (x >= 1)",
                "int collatz_steps(int x) {\n    int steps = 0;\n    while (x != 1) {\n"
                "        x = x % 2 == 0 ? x / 2 : 3 * x + 1;\n        steps++;\n    }\n    return steps;\n}\n",
                _collatz, ((1,), (2,), (3,), (6,), (7,), (27,))),
    EvalProblem("reverse_digits", "int(int)", "returns x with its decimal digits reversed (x >= 0; 1200 gives 21)",
                "int reverse_digits(int x) {\n    int r = 0;\n    while (x > 0) { r = r * 10 + x % 10; x /= 10; }\n"
                "    return r;\n}\n", lambda x: int(str(x)[::-1]), ((0,), (7,), (123,), (1200,), (90817,))),
    EvalProblem("popcount", "int(int)", "returns the number of 1 bits in the binary representation of x (x >= 0)",
                "int popcount(int x) {\n    int c = 0;\n    while (x) { c += x & 1; x >>= 1; }\n    return c;\n}\n",
                lambda x: bin(x).count("1"), ((0,), (1,), (7,), (8,), (255,), (1023,), (2147483647,))),
    EvalProblem("digital_root", "int(int)",
                "repeatedly replaces x by the sum of its decimal digits until one digit is left, and returns it "
                "(x >= 0)",
                "int digital_root(int x) {\n    while (x >= 10) {\n        int s = 0;\n"
                "        while (x) { s += x % 10; x /= 10; }\n        x = s;\n    }\n    return x;\n}\n",
                _digital_root, ((0,), (5,), (10,), (19,), (38,), (99999,), (123456789,))),
    EvalProblem("sum_multiples", "int(int)", "returns the sum of the natural numbers below x that are multiples of "
                "3 or 5 (x >= 0)",
                "int sum_multiples(int x) {\n    int s = 0;\n    for (int i = 1; i < x; i++)\n"
                "        if (i % 3 == 0 || i % 5 == 0) s += i;\n    return s;\n}\n",
                lambda x: sum(i for i in range(1, x) if i % 3 == 0 or i % 5 == 0), ((0,), (1,), (4,), (10,), (100,),
                                                                                     (1000,))),
    EvalProblem("power_mod", "int(int,int)", "returns a to the power b, modulo 1000 (a >= 0, b >= 0; 0 to the power "
                "0 is 1)",
                "int power_mod(int a, int b) {\n    int r = 1 % 1000;\n    a %= 1000;\n"
                "    while (b-- > 0) r = r * a % 1000;\n    return r;\n}\n",
                lambda a, b: pow(a, b, 1000), ((2, 10), (3, 0), (0, 0), (7, 222), (999, 999), (10, 3))),
    EvalProblem("is_palindrome", "int(const char*)",
                "returns 1 if the string s reads the same backwards, and 0 otherwise (the empty string is one)",
                "int is_palindrome(const char *s) {\n    int i = 0, j = (int)strlen(s) - 1;\n"
                "    while (i < j) if (s[i++] != s[j--]) return 0;\n    return 1;\n}\n",
                lambda s: int(s == s[::-1]), (("abba",), ("abca",), ("",), ("a",), ("racecar",), ("ab",))),
    EvalProblem("count_words", "int(const char*)",
                "returns the number of words in s, where words are separated by one or more spaces",
                "int count_words(const char *s) {\n    int c = 0, in = 0;\n    for (; *s; s++) {\n"
                "        if (*s == ' ') in = 0;\n        else if (!in) { in = 1; c++; }\n    }\n    return c;\n}\n",
                lambda s: len(s.split()),
                (("hello world",), ("",), ("hello",), ("  lead and trail  ",), ("a  b   c",), ("   ",))),
    EvalProblem("longest_run", "int(const char*)",
                "returns the length of the longest run of equal consecutive characters in s (0 for the empty string)",
                "int longest_run(const char *s) {\n    int best = 0, run = 0;\n    for (int i = 0; s[i]; i++) {\n"
                "        run = (i > 0 && s[i] == s[i - 1]) ? run + 1 : 1;\n        if (run > best) best = run;\n"
                "    }\n    return best;\n}\n",
                _longest_run, (("aab",), ("",), ("a",), ("abbbcc",), ("zzzz",), ("abab",))),
    EvalProblem("second_largest", "int(const int*,int)",
                "returns the second largest distinct value among the n items of a (a holds at least two distinct "
                "values)",
                "int second_largest(const int *a, int n) {\n    int first = INT_MIN, second = INT_MIN;\n"
                "    for (int i = 0; i < n; i++) {\n        if (a[i] > first) { second = first; first = a[i]; }\n"
                "        else if (a[i] < first && a[i] > second) second = a[i];\n    }\n    return second;\n}\n",
                _second_largest, (([3, 9, 9, 1, 7],), ([1, 2],), ([5, 5, 3],), ([-1, -5, -3],), ([10, 20, 30, 40],),
                                  ([4, 4, 4, 2],))),
    EvalProblem("count_inversions", "int(const int*,int)", "returns the number of pairs i < j with a[i] > a[j]",
                "int count_inversions(const int *a, int n) {\n    int c = 0;\n    for (int i = 0; i < n; i++)\n"
                "        for (int j = i + 1; j < n; j++) c += a[i] > a[j];\n    return c;\n}\n",
                _inversions, (([5, 1, 4, 2, 3],), ([],), ([1],), ([2, 1],), ([1, 2, 3],), ([3, 2, 1],))),
    EvalProblem("max_subarray", "int(const int*,int)",
                "returns the largest sum of a non-empty run of consecutive items of a (n >= 1)",
                "int max_subarray(const int *a, int n) {\n    int best = a[0], cur = a[0];\n"
                "    for (int i = 1; i < n; i++) {\n        cur = cur > 0 ? cur + a[i] : a[i];\n"
                "        if (cur > best) best = cur;\n    }\n    return best;\n}\n",
                _kadane, (([-2, 1, -3, 4, -1, 2, 1, -5, 4],), ([1],), ([-3],), ([5, -1, 5],), ([-5, -2, -9],))),
    EvalProblem("reverse_string", "void(char*)", "reverses the string s in place",
                "void reverse_string(char *s) {\n    int i = 0, j = (int)strlen(s) - 1;\n"
                "    while (i < j) { char t = s[i]; s[i++] = s[j]; s[j--] = t; }\n}\n",
                lambda s: s[::-1], (("hello",), ("ab",), ("",), ("a",), ("race car",))),
    EvalProblem("caesar", "void(char*)",
                "shifts every lowercase letter of s three places forward in the alphabet, in place (x becomes a, "
                "y becomes b, z becomes c); other characters stay",
                "void caesar(char *s) {\n    for (; *s; s++)\n"
                "        if (*s >= 'a' && *s <= 'z') *s = 'a' + (*s - 'a' + 3) % 26;\n}\n",
                _caesar, (("abc",), ("xyz",), ("hello world",), ("",), ("Zz!",))),
    EvalProblem("sort_array", "void(int*,int)", "sorts the n items of a in ascending order, in place",
                "void sort_array(int *a, int n) {\n    for (int i = 1; i < n; i++) {\n        int v = a[i], j = i;\n"
                "        while (j > 0 && a[j - 1] > v) { a[j] = a[j - 1]; j--; }\n        a[j] = v;\n    }\n}\n",
                sorted, (([3, 1, 2],), ([],), ([1],), ([5, -1, 5, 0],), ([9, 8, 7, 6, 5, 4, 3, 2, 1],))),
)
