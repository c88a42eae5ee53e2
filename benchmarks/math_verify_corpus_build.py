# ruff: noqa: E501  (one hand-written corpus row per line)
"""Build the unseen math-verifier corpus ``benchmarks/data/math_unseen.jsonl`` (issue 14).

Realistic model outputs written against golds of GSM8K test and MATH test problems (read from
``$SDPG_SHARED_DIR/data``, default ``../shared``). Each row carries its own label: whether the response's final
answer is mathematically correct for the problem (Math-Verify's philosophy: the *final* answer counts, formatting
and units do not, hedged or sprayed answers are wrong). Rows are written and labelled by hand (the templates below
are the writer's, not taken from any test or from the Math-Verify cases), then split per category into a tuning
half and a held-out half by a hash of the row id. The split is fixed in the file; re-running rebuilds it
identically. Usage: ``python benchmarks/math_verify_corpus_build.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SDPG_SHARED_DIR", ROOT.parent / "shared")).resolve()
OUT = ROOT / "benchmarks" / "data" / "math_unseen.jsonl"

# --- MATH test rows written by hand: (index, expected gold, category, prediction, label) ---------------------
MATH_ROWS: list[tuple[int, str, str, str, bool]] = [
    # base-n golds: answer in the gold's base; the decimal value or the question's number is wrong
    (3079, "443_5", "base_n", "Dividing repeatedly by 5 gives remainders 3, 4, 4, so $123_{10} = \\boxed{443_5}$.", True),
    (3079, "443_5", "base_n", "So the number in base 5 is \\boxed{443}.", True),
    (3079, "443_5", "base_n", "The answer is $\\boxed{123}$.", False),
    (3079, "443_5", "base_n", "Therefore $123_{10}$ expressed in base $5$ is $\\boxed{123_{10}}$.", False),
    (3079, "443_5", "base_n", "In base 5 we get \\boxed{434_5}.", False),
    (3142, "141_{13}", "base_n", "$222 = 1\\cdot 169 + 4 \\cdot 13 + 1$, so the answer is $\\boxed{141_{13}}$.", True),
    (3142, "141_{13}", "base_n", "The base-13 representation is \\boxed{141}.", True),
    (3142, "141_{13}", "base_n", "Converting, the answer is \\boxed{222}.", False),
    (3051, "4210_{7}", "base_n", "Working in base 7 throughout, the result is $\\boxed{4210_7}$.", True),
    (3051, "4210_{7}", "base_n", "In base ten this is 1477, so the answer is \\boxed{1477}.", False),
    (3051, "4210_{7}", "base_n", "The final answer is $4210_{7}$.", True),
    (3052, "1202_3", "base_n", "$2121_3 - 212_3 = \\boxed{1202_3}$", True),
    (3052, "1202_3", "base_n", "In decimal: $70 - 23 = 47$, so \\boxed{47}.", False),
    (3052, "1202_3", "base_n", "The answer is \\boxed{1202_{3}}", True),
    (3068, "40_9", "base_n", "$58_9 - 18_9 = \\boxed{40_9}$.", True),
    (3068, "40_9", "base_n", "$58_9 - 18_9 = 53 - 17 = 36$, so \\boxed{36}.", False),
    (3068, "40_9", "base_n", "The answer is \\boxed{40}.", True),
    (3125, "11010_2", "base_n", "The sum is $26$ in decimal, which is $\\boxed{11010_2}$ in binary.", True),
    (3125, "11010_2", "base_n", "So the sum is \\boxed{26}.", False),
    (3125, "11010_2", "base_n", "Final answer: $11011_2$", False),
    (3159, "506_7", "base_n", "Subtracting gives \\boxed{506_7}.", True),
    (3159, "506_7", "base_n", "So the answer is $\\boxed{253}$.", False),
    (3117, "25_{6}", "base_n", "$101_6 - 32_6 = \\boxed{25_6}$", True),
    (3117, "25_{6}", "base_n", "$101_6 - 32_6 = 37 - 20 = 17$. \\boxed{17}", False),
    # decimal golds: no default tolerance
    (35, "187.5", "decimal", "The answer is $\\boxed{187.5}$.", True),
    (35, "187.5", "decimal", "Thus the value is $\\boxed{187.50}$.", True),
    (35, "187.5", "decimal", "So the answer is \\boxed{\\frac{375}{2}}.", True),
    (35, "187.5", "decimal", "The answer is \\boxed{187.54}.", False),
    (35, "187.5", "decimal", "The answer is \\boxed{187.45}.", False),
    (35, "187.5", "decimal", "Rounding, the answer is \\boxed{188}.", False),
    (255, "3.21", "decimal", "We get $b = 1.3$ and $c = 1.91$, so $b + c = \\boxed{3.21}$.", True),
    (255, "3.21", "decimal", "So $b+c = \\boxed{3.214}$.", False),
    (255, "3.21", "decimal", "So $b+c = \\boxed{3.2}$.", False),
    (390, "228.3", "decimal", "To the nearest tenth the plant grows \\boxed{228.3} cm per week.", True),
    (390, "228.3", "decimal", "So the answer is \\boxed{228.34}.", False),
    (467, "0.43", "decimal", "The ball hits the ground after about $\\boxed{0.43}$ seconds.", True),
    (467, "0.43", "decimal", "The positive root is $t \\approx \\boxed{0.429}$.", False),
    (467, "0.43", "decimal", "So $t = \\boxed{.43}$ seconds.", True),
    (467, "0.43", "decimal", "Hence $t=\\boxed{0.44}$.", False),
    (422, ".5", "decimal", "The answer is $\\boxed{0.5}$.", True),
    (422, ".5", "decimal", "The answer is $\\boxed{\\frac12}$.", True),
    (422, ".5", "decimal", "The answer is $\\boxed{0.52}$.", False),
    (224, "-23.5", "decimal", "Therefore the sum is $\\boxed{-23.5}$.", True),
    (224, "-23.5", "decimal", "Therefore the sum is $\\boxed{-23.54}$.", False),
    (224, "-23.5", "decimal", "Therefore the sum is $\\boxed{23.5}$.", False),
    # intervals: bracket types matter
    (257, "[6,\\infty)", "interval", "The minimum of $|x+1|+|x-5|$ is 6, so the range is $\\boxed{[6,\\infty)}$.", True),
    (257, "[6,\\infty)", "interval", "The range is $\\boxed{(6,\\infty)}$.", False),
    (257, "[6,\\infty)", "interval", "The range is $\\boxed{[6, \\infty]}$.", False),
    (257, "[6,\\infty)", "interval", "So the range is all $y \\geq 6$, i.e. $\\boxed{y \\ge 6}$.", True),
    (273, "[-10,4]", "interval", "The range of $g$ is $\\boxed{[-10,4]}$.", True),
    (273, "[-10,4]", "interval", "The range of $g$ is $\\boxed{(-10,4)}$.", False),
    (273, "[-10,4]", "interval", "The range of $g$ is $\\boxed{[-10,4)}$.", False),
    (273, "[-10,4]", "interval", "The range of $g$ is $\\boxed{[-11,3]}$.", False),
    (273, "[-10,4]", "interval", "The range is $\\left[ -10, 4 \\right]$.", True),
    (128, "(-\\infty,0)\\cup (0,\\infty)", "interval", "The range is $\\boxed{(-\\infty,0)\\cup(0,\\infty)}$.", True),
    (128, "(-\\infty,0)\\cup (0,\\infty)", "interval", "The range is $\\boxed{(-\\infty,0]\\cup[0,\\infty)}$.", False),
    (128, "(-\\infty,0)\\cup (0,\\infty)", "interval", "The range is $\\boxed{(-\\infty,\\infty)}$.", False),
    (847, "(-\\infty,0]\\cup[4,\\infty)", "interval", "We need $a^2 - 4a \\ge 0$, so $a \\in \\boxed{(-\\infty,0]\\cup[4,\\infty)}$.", True),
    (847, "(-\\infty,0]\\cup[4,\\infty)", "interval", "So $\\boxed{(-\\infty,0)\\cup(4,\\infty)}$.", False),
    (847, "(-\\infty,0]\\cup[4,\\infty)", "interval", "So $\\boxed{[0,4]}$.", False),
    # unions written as inequalities
    (846, "(-\\infty, 2) \\cup (3, \\infty)", "union", "We need $x^2-5x+6>0$, i.e. $\\boxed{x<2 \\text{ or } x>3}$.", True),
    (846, "(-\\infty, 2) \\cup (3, \\infty)", "union", "The domain is $x < 2$ or $x > 3$.", True),
    (846, "(-\\infty, 2) \\cup (3, \\infty)", "union", "The domain is $\\boxed{(-\\infty,2)\\cup(3,\\infty)}$.", True),
    (846, "(-\\infty, 2) \\cup (3, \\infty)", "union", "The domain is $\\boxed{(-\\infty,2]\\cup[3,\\infty)}$.", False),
    (846, "(-\\infty, 2) \\cup (3, \\infty)", "union", "The domain is $\\boxed{x \\le 2 \\text{ or } x \\ge 3}$.", False),
    (846, "(-\\infty, 2) \\cup (3, \\infty)", "union", "The domain is $\\boxed{(2,3)}$.", False),
    (846, "(-\\infty, 2) \\cup (3, \\infty)", "union", "So the domain is $\\boxed{x<2 \\text{ and } x>3}$.", False),
    (435, "(-\\infty,-8)\\cup (8,\\infty)", "union", "We need $|m| > 8$, i.e. $m<-8$ or $m>8$: \\boxed{(-\\infty,-8)\\cup(8,\\infty)}", True),
    (435, "(-\\infty,-8)\\cup (8,\\infty)", "union", "So \\boxed{m < -8 \\text{ or } m > 8}.", True),
    (435, "(-\\infty,-8)\\cup (8,\\infty)", "union", "So \\boxed{(-8,8)}.", False),
    # degrees vs radians: only the gold's unit
    (1674, "25^\\circ", "angle", "Since $\\angle CAB$ is half of $\\angle COB$, it is $\\boxed{25^\\circ}$.", True),
    (1674, "25^\\circ", "angle", "So the angle measures \\boxed{25} degrees.", True),
    (1674, "25^\\circ", "angle", "Thus $\\angle CAB = \\boxed{25}$.", True),
    (1674, "25^\\circ", "angle", "In radians, $\\angle CAB = \\boxed{\\frac{5\\pi}{36}}$.", False),
    (1674, "25^\\circ", "angle", "So the angle is $\\boxed{50^\\circ}$.", False),
    (1720, "135^\\circ", "angle", "The interior angle is $\\boxed{135^{\\circ}}$.", True),
    (1720, "135^\\circ", "angle", "The interior angle is $\\boxed{\\frac{3\\pi}{4}}$.", False),
    (1720, "135^\\circ", "angle", "The interior angle is $\\boxed{135°}$.", True),
    (4602, "\\frac{\\pi}{3}", "angle", "$\\cos(\\pi/3) = 1/2$, so the answer is $\\boxed{\\frac{\\pi}{3}}$.", True),
    (4602, "\\frac{\\pi}{3}", "angle", "Since $\\cos 60^\\circ = 1/2$, the answer is $\\boxed{60^\\circ}$.", False),
    (4602, "\\frac{\\pi}{3}", "angle", "The answer is \\boxed{60}.", False),
    (4602, "\\frac{\\pi}{3}", "angle", "The answer is $\\boxed{\\pi/3}$ radians.", True),
    (4693, "\\frac{\\pi}{3}", "angle", "$\\tan(\\pi/3)=\\sqrt3$ so \\boxed{\\dfrac{\\pi}{3}}.", True),
    (4693, "\\frac{\\pi}{3}", "angle", "The angle is $60^{\\circ}$.", False),
    (4711, "\\frac{\\pi}{2}", "angle", "Adding the arctangents gives $\\boxed{\\frac{\\pi}{2}}$.", True),
    (4711, "\\frac{\\pi}{2}", "angle", "Adding the arctangents gives $\\boxed{90^\\circ}$.", False),
    # identities: algebraic equivalence, but not |x| = x
    (71, "x^3 + 2x^2 + x", "identity", "Expanding, $(x+1)^2 x = \\boxed{x^3+2x^2+x}$.", True),
    (71, "x^3 + 2x^2 + x", "identity", "The product is $\\boxed{x(x+1)^2}$.", True),
    (71, "x^3 + 2x^2 + x", "identity", "The product is $\\boxed{x^3+2x^2+2x}$.", False),
    (71, "x^3 + 2x^2 + x", "identity", "The product is $\\boxed{x^3 + x^2 + x}$.", False),
    (167, "2x^2-18", "identity", "$(x+3)(2x-6) = \\boxed{2x^2 - 18}$", True),
    (167, "2x^2-18", "identity", "$(x+3)(2x-6) = \\boxed{2(x^2-9)}$", True),
    (167, "2x^2-18", "identity", "$(x+3)(2x-6) = \\boxed{2x^2 + 12x - 18}$", False),
    (167, "2x^2-18", "identity", "$(x+3)(2x-6) = \\boxed{2|x|^2-18}$", True),
    (340, "-\\sqrt{x-2}+2", "identity", "So $k(x) = \\boxed{2-\\sqrt{x-2}}$.", True),
    (340, "-\\sqrt{x-2}+2", "identity", "So $k(x) = \\boxed{2+\\sqrt{x-2}}$.", False),
    (340, "-\\sqrt{x-2}+2", "identity", "So $k(x) = \\boxed{2-(x-2)}$.", False),
    (251, "\\frac{h^2}{m}", "identity", "The ratio is $\\boxed{h^2/m}$.", True),
    (251, "\\frac{h^2}{m}", "identity", "The ratio is $\\boxed{\\frac{|h|^2}{m}}$.", True),
    (251, "\\frac{h^2}{m}", "identity", "The ratio is $\\boxed{\\frac{h}{m}}$.", False),
    (233, "a^3 + a^2", "identity", "The expression simplifies to $\\boxed{a^2(a+1)}$.", True),
    (233, "a^3 + a^2", "identity", "The expression simplifies to $\\boxed{|a|^3 + a^2}$.", False),
    (233, "a^3 + a^2", "identity", "The expression simplifies to $\\boxed{\\sqrt{a^6} + a^2}$.", False),
    (1350, "\\pi-2", "identity", "So $p = \\boxed{\\pi - 2}$.", True),
    (1350, "\\pi-2", "identity", "So $p = \\boxed{-2+\\pi}$.", True),
    (1350, "\\pi-2", "identity", "So $p = \\boxed{1.14159}$.", False),
    # structures: tuples, lists, matrices, text
    (20, "(1,4)", "structure", "The lines meet at $(s,t) = \\boxed{(1,4)}$.", True),
    (20, "(1,4)", "structure", "The lines meet at $\\boxed{(4,1)}$.", False),
    (20, "(1,4)", "structure", "So $s=1$ and $t=4$, giving $\\boxed{(s,t)=(1,4)}$.", True),
    (20, "(1,4)", "structure", "The lines meet at $\\boxed{[1,4]}$.", False),
    (29, "(1,-2)", "structure", "Hence $(a,b) = \\boxed{(1,-2)}$.", True),
    (29, "(1,-2)", "structure", "Hence $(a,b) = \\boxed{(1,2)}$.", False),
    (29, "(1,-2)", "structure", "So $a = 1$ and $b = -2$.", True),
    (4457, "\\begin{pmatrix} 11 \\\\ -36 \\\\ -3 \\end{pmatrix}", "structure",
     "The cross product is $\\boxed{\\begin{pmatrix} 11 \\\\ -36 \\\\ -3 \\end{pmatrix}}$.", True),
    (4457, "\\begin{pmatrix} 11 \\\\ -36 \\\\ -3 \\end{pmatrix}", "structure",
     "The cross product is $\\boxed{\\begin{pmatrix} 11 \\\\ 36 \\\\ -3 \\end{pmatrix}}$.", False),
    (4457, "\\begin{pmatrix} 11 \\\\ -36 \\\\ -3 \\end{pmatrix}", "structure",
     "The cross product is $\\boxed{(11,-36,-3)}$.", True),
    (549, "\\text{Evelyn}", "structure", "Evelyn covers the most distance per unit time, so the answer is $\\boxed{\\text{Evelyn}}$.", True),
    (549, "\\text{Evelyn}", "structure", "The answer is \\boxed{\\text{Briana}}.", False),
    (1865, "3:1", "structure", "The ratio of the volumes is $\\boxed{3:1}$.", True),
    (1865, "3:1", "structure", "The ratio of the volumes is $\\boxed{1:3}$.", False),
    # lists in prose
    (14, "7,9,12,13", "prose_list", "The four integers are $7$, $9$, $12$, and $13$.", True),
    (14, "7,9,12,13", "prose_list", "So the integers are \\boxed{7, 9, 12, 13}.", True),
    (14, "7,9,12,13", "prose_list", "So the integers are \\boxed{7, 9, 12}.", False),
    (14, "7,9,12,13", "prose_list", "So the integers are \\boxed{7, 9, 12, 13, 14}.", False),
    (423, "12, 10, 6", "prose_list", "The discriminant $49-4c$ must be a perfect square, so $c$ is $6$, $10$ and $12$.", True),
    (423, "12, 10, 6", "prose_list", "Therefore the values are $\\boxed{6}$, $\\boxed{10}$, and $\\boxed{12}$.", True),
    (423, "12, 10, 6", "prose_list", "Therefore the values of $c$ are $6$ and $12$.", False),
    (423, "12, 10, 6", "prose_list", "The answer is 6, 10, and 12.", True),
    (2228, "2,6", "prose_list", "The real solutions are $x = 2$ and $x = 6$.", True),
    (2228, "2,6", "prose_list", "So the solutions are $\\boxed{2 \\text{ and } 6}$.", True),
    (2228, "2,6", "prose_list", "So the solutions are $\\boxed{2, -6}$.", False),
    (2228, "2,6", "prose_list", "So the solutions are $\\boxed{6, 2}$.", True),
    # repeating decimals
    (803, "\\frac{1}{3}", "repeating", "The probability is $\\boxed{0.\\overline{3}}$.", True),
    (803, "\\frac{1}{3}", "repeating", "The probability is $\\boxed{0.333\\ldots}$.", True),
    (803, "\\frac{1}{3}", "repeating", "The probability is $\\boxed{0.33}$.", False),
    (895, "\\frac{30}{11}", "repeating", "So the answer is $\\boxed{2.\\overline{72}}$.", True),
    (895, "\\frac{30}{11}", "repeating", "So the answer is $\\boxed{2.\\overline{7}}$.", False),
    (895, "\\frac{30}{11}", "repeating", "So the answer is $\\boxed{2.7272}$.", False),
    (51, "\\frac{1}{33}", "repeating", "As a decimal, $\\frac{1}{33} = 0.\\overline{03}$, so $\\boxed{0.\\overline{03}}$.", True),
    (51, "\\frac{1}{33}", "repeating", "Hence $\\boxed{0.0\\overline{3}}$.", False),
    (93, "\\frac{25}{9}", "repeating", "So $x = \\boxed{2.\\overline{7}}$.", True),
    (93, "\\frac{25}{9}", "repeating", "So $x = \\boxed{2.\\overline{5}}$.", False),
    # times of day
    (775, "9\\text{ a.m.}", "time", "The train arrives in Denver at $\\boxed{9 \\text{ a.m.}}$", True),
    (775, "9\\text{ a.m.}", "time", "It arrives at 9:00 AM Denver time.", True),
    (775, "9\\text{ a.m.}", "time", "The answer is \\boxed{9:00 \\text{ a.m.}}", True),
    (775, "9\\text{ a.m.}", "time", "The answer is \\boxed{9 \\text{ p.m.}}", False),
    (775, "9\\text{ a.m.}", "time", "The answer is \\boxed{11 \\text{ a.m.}}", False),
    (3980, "\\text{1:03 PM}", "time", "They next meet at \\boxed{1:03 \\text{ PM}}.", True),
    (3980, "\\text{1:03 PM}", "time", "They next meet at \\boxed{\\text{1:03 p.m.}}.", True),
    (3980, "\\text{1:03 PM}", "time", "They next meet at \\boxed{1:03 \\text{ AM}}.", False),
    (3980, "\\text{1:03 PM}", "time", "They next meet at \\boxed{12:03 \\text{ PM}}.", False),
    (4087, "\\text{4:30 p.m.}", "time", "7200 seconds is 2 hours, so they arrive at \\boxed{4:30 \\text{ p.m.}}", True),
    (4087, "\\text{4:30 p.m.}", "time", "They arrive at 4:30 PM.", True),
    (4087, "\\text{4:30 p.m.}", "time", "They arrive at \\boxed{4:30 \\text{ a.m.}}", False),
    (4087, "\\text{4:30 p.m.}", "time", "They arrive at \\boxed{4:50 \\text{ p.m.}}", False),
    # percents against percent and fraction golds
    (737, "44\\%", "percent", "The area grows by a factor of $1.44$, i.e. by $\\boxed{44\\%}$.", True),
    (737, "44\\%", "percent", "The area increases by \\boxed{44} percent.", True),
    (737, "44\\%", "percent", "The area increases by \\boxed{44}.", True),
    (737, "44\\%", "percent", "The area increases by \\boxed{40\\%}.", False),
    (737, "44\\%", "percent", "The area increases by \\boxed{144\\%}.", False),
    (449, "\\frac{2}{5}", "percent", "The probability is $\\boxed{40\\%}$.", True),
    (449, "\\frac{2}{5}", "percent", "The probability is $\\boxed{0.4}$.", True),
    (449, "\\frac{2}{5}", "percent", "The probability is $\\boxed{40}$.", False),
    (449, "\\frac{2}{5}", "percent", "The probability is $\\boxed{4\\%}$.", False),
    (1138, "\\frac{9}{25}", "percent", "So the probability is $36\\%$.", True),
    (1138, "\\frac{9}{25}", "percent", "So the probability is $\\boxed{0.36}$.", True),
    (1138, "\\frac{9}{25}", "percent", "So the probability is $\\boxed{9\\%}$.", False),
    # mixed numbers in plain text
    (1231, "6\\frac15", "mixed_number", "$\\frac{720+24}{120} = \\frac{31}{5}$, which is \\boxed{6\\frac{1}{5}}.", True),
    (1231, "6\\frac15", "mixed_number", "As a mixed number this is 6 1/5.", True),
    (1231, "6\\frac15", "mixed_number", "The answer is \\boxed{6 1/5}.", True),
    (1231, "6\\frac15", "mixed_number", "The answer is \\boxed{\\frac{31}{5}}.", True),
    (1231, "6\\frac15", "mixed_number", "The answer is \\boxed{5 1/5}.", False),
    (1231, "6\\frac15", "mixed_number", "The answer is \\boxed{6 1/4}.", False),
    (1920, "3\\frac18", "mixed_number", "So it takes 3 1/8 hours.", True),
    (1920, "3\\frac18", "mixed_number", "So the answer is \\boxed{3\\frac{1}{8}}.", True),
    (1920, "3\\frac18", "mixed_number", "So the answer is \\boxed{\\frac{3}{8}}.", False),
    (1689, "1\\frac{12}{13}", "mixed_number", "That is $1 \\frac{12}{13}$.", True),
    (1689, "1\\frac{12}{13}", "mixed_number", "The answer is 1 12/13.", True),
    (1689, "1\\frac{12}{13}", "mixed_number", "The answer is 12/13.", False),
]

# --- hand-written GSM8K responses: (index, category, prediction with {g}, label); {g} is the gold ------------
GSM_ROWS: list[tuple[int, str, str, bool]] = [
    (0, "units", "She sells 9 eggs at $2 each, so she makes $18 every day.", True),
    (0, "format", "Janet makes $\\$18$ per day. The answer is \\$18.00.", True),
    (0, "hedge", "She makes 9 * 2 = 18 dollars.\n\nBut if she sells the breakfast eggs too, she makes 26 dollars.\n\n"
     "So the answer is 18 or 26.", False),
    (0, "hedge", "\\boxed{18}\n\nAlternatively, counting all eggs, the answer would be \\boxed{32}.", False),
    (0, "hack", "```python\neggs = 16 - 3 - 4\nprint(eggs * 2)\n```\nRunning this prints 18.", True),
    (0, "hack", "```python\nfor answer in range(100):\n    print(answer)\n```", False),
    (0, "hack", "Let me compute.\n```python\nremaining = 16 - 3 - 4  # 9\nrevenue = remaining * 2  # 18\n```\n", False),
    (0, "hack", "The answer is \\boxed{9 \\times 3 = 18}.", False),
    (0, "hack", "The answer is \\boxed{16 - 3 - 4 = 9}.", False),
    (0, "hack", "The answer is \\boxed{9 \\times 2 = 18}.", True),
    (1, "units", "It takes 2 bolts of blue fiber and 1 bolt of white fiber, so 3 bolts in total.", True),
    (1, "units", "The robe needs \\boxed{3} bolts.", True),
    (1, "near_miss", "The robe needs \\boxed{2.5} bolts.", False),
    (2, "units", "His profit is \\$70,000.", True),
    (2, "format", "He made a profit of $\\boxed{70{,}000}$ dollars.", True),
    (2, "format", "Profit $= 200{,}000 - 130{,}000 = 70{,}000$. #### 70000", True),
    (2, "near_miss", "He made a profit of $\\boxed{7{,}000}$ dollars.", False),
    (2, "near_miss", "So the house is now worth \\$200,000, and the profit is 200,000 - 80,000 = \\$120,000.", False),
    (3, "units", "He runs 60 meters 3 times a week for 3 sprints each, so 540 meters a week.", True),
    (3, "units", "Total: \\boxed{540 \\text{ meters}}", True),
    (3, "spray", "The answer is one of \\boxed{180}, \\boxed{540}, \\boxed{1620}.", False),
    (4, "units", "She needs to give the chickens 20 cups of feed in the final meal.", True),
    (4, "units", "#### 20 cups", True),
    (4, "hedge", "So the final meal needs 20 cups. Or perhaps 25 cups if we count the morning.", False),
    (5, "format", "Each pair costs $5 + 3 = 8$, so 16 glasses cost $\\boxed{\\$64}$.", True),
    (5, "near_miss", "16 glasses at \\$5 cost \\$80. Answer: 80", False),
    (6, "units", "Seattle has 20 sheep, Charleston 80 and Toulouse 160, so together they have 260 sheep.", True),
    (6, "units", "Altogether they have \\boxed{260 \\text{ sheep}}.", True),
    (6, "spray", "Answer: 260, 240, 280", False),
    (7, "units", "The download takes 160 minutes in total.", True),
    (7, "near_miss", "So it takes \\boxed{120} minutes.", False),
    (8, "units", "So John is 45 miles from home.", True),
    (8, "hack", "The answer is the distance from home, which is \\boxed{d}.", False),
    (9, "format", "Her earnings this week are $\\boxed{460}$ dollars.", True),
    (9, "format", "She earned \\$460.00 this week.", True),
    (9, "hedge", "Her earnings are \\boxed{460}.\n\nHowever, if overtime is 2x, they are \\boxed{500}.", False),
    (10, "units", "They had 366 downloads in the three months.", True),
    (10, "near_miss", "Total downloads = 60 + 540 + 1080 = \\boxed{1680}", False),
    (11, "format", "The total cost was \\$694.", True),
    (11, "format", "Therefore, the total cost is $694$ dollars.\n\n**Final Answer:** $694", True),
    (12, "units", "It will take 13 years before he earns money.", True),
    (12, "units", "\\boxed{13\\ \\text{years}}", True),
    (13, "format", "So she started with \\boxed{18} vacuum cleaners.", True),
    (14, "percent", "So \\boxed{60\\%} of the students enrolled in hip-hop dance.", True),
    (14, "percent", "That is 60 percent of the students.", True),
    (14, "percent", "So \\boxed{0.6} of the students.", False),
    (15, "format", "The maximum profit is \\$125.", True),
    (16, "units", "Each train covers 80 + 150 = 230 miles.", True),
    (17, "format", "Her annual salary is \\$57,500.", True),
    (17, "near_miss", "Her annual salary is \\$57,000.", False),
    (18, "units", "She eats 3 eggs a day for 28 days, 84 eggs, which is 7 dozen.", True),
    (18, "units", "So she eats \\boxed{7 \\text{ dozen}} eggs.", True),
    (18, "near_miss", "She eats \\boxed{84} eggs in 4 weeks.", False),
    (654, "units", "She needs 2 dozen eggs.", True),
    (654, "near_miss", "She needs 24 eggs.", False),
]

# generic GSM8K templates over many problems: (category, template, label); {g} gold, {u} unit word, {w} wrong
GSM_TEMPLATES: list[tuple[str, str, bool]] = [
    ("format", "Step 1: work it out.\nStep 2: add up.\n#### {g}", True),
    ("format", "Putting it together, the answer is $\\boxed{{{g}}}$.", True),
    ("format", "**Final Answer:** {g}", True),
    ("format", "The final answer is {g}.", True),
    ("format", "Answer: {g}.0", True),
    ("units", "So the answer is {g} {u}.", True),
    ("units", "Therefore there are \\boxed{{{g} \\text{{ {u}}}}}.", True),
    ("units", "In total that is {g} {u}.", True),
    ("near_miss", "So the answer is \\boxed{{{w}}}.", False),
    ("near_miss", "#### {w}", False),
    ("near_miss", "The answer is {g}.5.", False),
    ("hedge", "The answer is either {g} or {w}.", False),
    ("hedge", "So we get \\boxed{{{g}}}.\n\nHmm, but re-reading the problem, it should be \\boxed{{{w}}}.", False),
    ("hedge", "\\boxed{{{w}}}\n\nThe answer is {g}.", False),
    ("hedge", "The answer is \\boxed{{{g}}} (or possibly \\boxed{{{w}}}).", False),
    ("spray", "\\boxed{{{w}}}, \\boxed{{{g}}}", False),
    ("spray", "Possible answers: {w}, {g}, {v}.", False),
    ("spray", "\\boxed{{{w}, {g}, {v}}}", False),
    ("hack", "```\nanswer = {g}\n```\nI am not sure, so I will not give a final answer.", False),
    ("hack", "The answer is \\boxed{{\\text{{correct}}}}.", False),
    ("hack", "\\boxed{{}}", False),
    ("hack", "<think>The answer is \\boxed{{{g}}}.</think> Final: \\boxed{{{w}}}", False),
    ("hack", "The answer is \\boxed{{{w} = {g}}}.", False),
    ("self_correction", "First I got {w} {u}, but I forgot a step. Redoing it carefully gives \\boxed{{{g}}}.", True),
    ("self_correction", "Let me check: {w} is too large. Correcting the arithmetic, the answer is {g}.", True),
]


def _load(name: str) -> list[dict]:
    return [json.loads(x) for x in (SHARED / "data" / name / "test.jsonl").open(encoding="utf-8")]


def _unit(question: str) -> str | None:
    m = re.search(r"[Hh]ow many ([a-z]+)", question)
    if m and m.group(1) not in ("more", "of", "in", "times", "total", "are", "does", "do", "did", "is", "was", "will"):
        return m.group(1)
    return None


def _wrong(g: int, rng: random.Random) -> int:
    return rng.choice([g + 1, g - 1, g * 2, g + 10, max(0, g - 10), g * 10]) if g else rng.choice([1, 2, 10])


def build() -> list[dict]:
    math, gsm = _load("math"), _load("gsm8k")
    rows: list[dict] = []
    for idx, expect, cat, pred, label in MATH_ROWS:
        gold = math[idx]["answer"]
        assert gold == expect, (idx, gold, expect)
        rows.append({"source": f"math/test/{idx}", "gold": gold, "category": cat, "prediction": pred, "label": label})
    for idx, cat, pred, label in GSM_ROWS:
        gold = gsm[idx]["answer"].rsplit("####", 1)[1].strip()
        rows.append({"source": f"gsm8k/test/{idx}", "gold": gold, "category": cat, "prediction": pred,
                     "label": label})
    rng = random.Random(14)
    picks = [i for i in range(20, len(gsm)) if _unit(gsm[i]["question"])]
    for idx in rng.sample(picks, 60):
        gold = gsm[idx]["answer"].rsplit("####", 1)[1].strip()
        g = int(gold.replace(",", ""))
        w = _wrong(g, rng)
        v = w + 3 if w + 3 != g else w + 4
        unit = _unit(gsm[idx]["question"])
        for cat, template, label in rng.sample(GSM_TEMPLATES, 4):
            pred = template.format(g=g, w=w, v=v, u=unit)
            rows.append({"source": f"gsm8k/test/{idx}", "gold": gold, "category": cat, "prediction": pred,
                         "label": label})
    return _split(rows)


def _split(rows: list[dict]) -> list[dict]:
    """Number rows, then hold out half of each category (by a hash of the row id), fixed once and for all."""
    for n, row in enumerate(rows):
        row["id"] = f"u{n:04d}"
    by_cat: dict[str, list[dict]] = {}
    for row in rows:
        by_cat.setdefault(row["category"], []).append(row)
    for members in by_cat.values():
        members.sort(key=lambda r: hashlib.sha256(r["id"].encode()).hexdigest())
        for k, row in enumerate(members):
            row["split"] = "heldout" if k % 2 == 0 else "tune"
    keys = ("id", "split", "category", "source", "gold", "prediction", "label")
    return [{k: row[k] for k in keys} for row in rows]


def main() -> None:
    rows = build()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    held = sum(r["split"] == "heldout" for r in rows)
    print(json.dumps({"rows": len(rows), "heldout": held, "tune": len(rows) - held, "path": str(OUT)}))


if __name__ == "__main__":
    main()
