"""Logistic regression with the feature scaling and C chosen together by stratified k-fold cross-validation.

Behaves like a scikit-learn classifier (hyper-parameters in ``__init__``, ``fit`` returns self,
learned state ends in ``_``). Each candidate scaling (:mod:`.scaling`: none, standardise, l2,
sqrt-l2) walks the C grid with warm starts in every fold; folds run in parallel threads; the solver
is full-batch L-BFGS in NumPy/SciPy, in the row space of the training matrix when features
outnumber rows (exact, see :mod:`.solver`). The objective is scikit-learn's, so ``C`` means what it
means in ``LogisticRegression`` on the scaled features. Fits that hit ``max_iter`` are counted in
``n_not_converged_`` and reported, not hidden. How the choice is made: :mod:`.linear`.

Prediction needs only NumPy and the learned arrays, so a saved head loads without scikit-learn
objects and without pickle.
"""

from __future__ import annotations

import numpy as np

from ._common import check_folds, log_loss, softmax
from .linear import DEFAULT_CS, LinearHead

__all__ = ["DEFAULT_CS", "LogisticHead", "check_folds"]


class LogisticHead(LinearHead):
    """Multinomial (binary: sigmoid) logistic regression with cross-validated C.

    Parameters
    ----------
    Cs : "auto" or sequence of float, default "auto"
        Inverse regularisation strengths to try (scikit-learn's meaning of C, on the scaled features).
        "auto": one per decade from 1e-4 to 1e4, the walk stopping early past the optimum and extended
        by up to three decades past an edge where the best C sits; a sequence is used as given.
    cv : int, default 3
        Number of stratified folds. Each scaling's best C: the lowest mean CV log-loss among the C
        values within one standard error of the best mean CV accuracy; the same rule between scalings.
    class_weight : None or "balanced"
    max_iter, tol : L-BFGS stopping rules of the final fit (tol, default 1e-5, bounds the largest gradient
        entry, as in scikit-learn; below 1e-6 the solve runs in float64). Fits inside the folds stop at
        100 x tol.
    random_state : int, seeds the fold assignment (and the minibatch order out of core).
    n_jobs : int or None, folds run in parallel (None: one per fold, at most 2 per CPU).
    max_epochs, batch_size, polish_iter : out of core only (:meth:`fit_stream`): epochs and minibatch
        size of Adam, then at most ``polish_iter`` streamed full-batch L-BFGS iterations (0: none).
    scaling : "auto" or one of "none", "standardise", "l2", "sqrt-l2", default "auto"
        "auto" tries them all on the folds (with a single C and no folds, and out of core:
        "standardise").
    """

    kind = "logreg"
    tie_name = "mean_log_loss"

    @property
    def loss(self):
        return "binomial" if len(self.classes_) == 2 else "multinomial"

    def _score(self, dec, y_enc):
        proba = _proba(dec)
        return float(np.mean(proba.argmax(1) == y_enc)), log_loss(y_enc, proba)

    def _set_coef(self, coef, intercept):
        if coef.shape[0] == 1:  # binary: express the sigmoid as a two-class softmax
            coef = np.vstack([-coef[0] / 2, coef[0] / 2])
            intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
        super()._set_coef(coef, intercept)

    def predict_proba(self, X) -> np.ndarray:
        return softmax(self.decision_function(X))

    def to_torch(self):
        """A ``torch.nn.Module`` mapping features (N, D) to class probabilities (N, K), for export."""
        from .torch_modules import LinearSoftmax

        return LinearSoftmax(self.mean_, self.scale_, self.coef_, self.intercept_, self.scaling_)


def _proba(dec: np.ndarray) -> np.ndarray:
    if dec.shape[1] == 1:
        p1 = 1.0 / (1.0 + np.exp(-dec[:, 0].astype(np.float64)))
        return np.column_stack([1 - p1, p1])
    return softmax(dec)
