import subprocess
import sys


def test_importing_the_engine_loads_no_qt():
    code = (
        "import sys, pkgutil, importlib, trainer\n"
        "names = [m.name for m in pkgutil.walk_packages(trainer.__path__, 'trainer.')]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "qt = ('PySide6', 'pyqtgraph', 'PyQt5', 'PyQt6', 'shiboken6')\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in qt]\n"
        "print(len(names), len(set(names) & set(sys.modules)))\n"
        "assert not bad, bad\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    found, imported = map(int, out.stdout.split())
    assert found == imported >= 30  # every engine module, in its subpackages too, was imported
