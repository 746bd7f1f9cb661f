"""The Evaluate controls over the training curves: K, Evaluate / Cancel, progress and the
result line (the numbers ``latent-train evaluate`` gives for the same model and seed)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QHBoxLayout, QProgressBar, QPushButton, QWidget

from explorer.evaluation import EvalState, Evaluation

from .common import hint
from .inputs import RangeSpinBox

K_MIN, K_MAX, K_DEFAULT = 1, 100_000, 1000


class EvaluationControls(QWidget):
    """K, a progress bar while it runs, and Evaluate (Cancel while running)."""

    def __init__(
        self,
        evaluation: Evaluation,
        training: Callable[[], bool],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.evaluation, self.training = evaluation, training
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.k = RangeSpinBox(
            K_MIN,
            K_MAX,
            K_DEFAULT,
            "Samples per test image for -log p(x): from q (importance sampling) and, beside "
            "it, from the prior (naive Monte Carlo)",
            "K",
        )
        self.k.setPrefix("K = ")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setMaximumWidth(160)
        self.progress.hide()
        self.button = QPushButton("Evaluate")
        self.button.clicked.connect(self._clicked)
        lay.addWidget(self.k)
        lay.addWidget(self.progress)
        lay.addWidget(self.button)
        self.result = hint("")  # shown by the window under the heading
        self.result.setWordWrap(True)
        evaluation.changed.connect(self.render)
        evaluation.session.historyReset.connect(self.render)  # another model: can it be?
        self.render()

    def _clicked(self) -> None:
        if self.evaluation.running:
            self.evaluation.cancel()
        else:
            self.start()

    def start(self) -> bool:
        k = self.k.value()
        return self.evaluation.start(k, k, running_training=self.training())

    def render(self) -> None:
        ev = self.evaluation
        running = ev.state is EvalState.RUNNING
        self.button.setText("Cancel" if running else "Evaluate")
        self.button.setToolTip(
            "Stop the evaluation"
            if running
            else "Measure on every test image: negative ELBO, -log p(x) by importance sampling "
            "and by prior sampling (K each), active units and KL per dimension "
            "(Ctrl+Shift+L)"
        )
        never = None if running else ev.unavailable()
        if never is not None:
            self.button.setToolTip(never)
        self.button.setEnabled(never is None)
        self.k.setEnabled(not running and never is None)
        self.progress.setVisible(running)
        self.progress.setValue(round(1000 * ev.fraction))
        self.progress.setFormat(f"{ev.text or 'starting'} %p%")
        self.result.setText(never or ev.summary())
        # always there, empty or not: a result appearing must not move the curves under it
        self.result.setMinimumHeight(2 * self.result.fontMetrics().lineSpacing())
