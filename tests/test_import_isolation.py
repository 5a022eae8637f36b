"""`import esopt` must not pull in torch or ray (the core needs only numpy and scipy)."""

import subprocess
import sys


def _run(code):
    cmd = [sys.executable, "-c", code]
    return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120)


def test_import_esopt_leaves_torch_and_ray_out():
    code = (
        "import sys, esopt, esopt.testfunctions, esopt.minimize; "
        "print(sorted(m for m in ('torch', 'ray', 'trials', 'cluster', 'sklearn') if m in sys.modules))"
    )
    out = _run(code)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_minimize_runs_without_torch_and_ray():
    code = (
        "import sys, numpy as np, esopt; "
        "r = esopt.minimize(esopt.testfunctions.sphere, np.ones(3), 1.0, seed=0, options={'maxiter': 5}); "
        "print(r.nit, 'torch' in sys.modules, 'ray' in sys.modules)"
    )
    out = _run(code)
    assert out.stdout.split() == ["5", "False", "False"], out.stdout + out.stderr
