import subprocess
import sys


def test_importing_the_engine_loads_no_qt():
    code = (
        "import sys, pkgutil, importlib, trainer\n"
        "for m in pkgutil.iter_modules(trainer.__path__):\n"
        "    importlib.import_module('trainer.' + m.name)\n"
        "qt = ('PySide6', 'pyqtgraph', 'PyQt5', 'PyQt6', 'shiboken6')\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in qt]\n"
        "print(len([m for m in sys.modules if m.startswith('trainer.')]))\n"
        "assert not bad, bad\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) >= 9  # every engine module was imported
