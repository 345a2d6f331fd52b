"""Significance tests of parameter importance (torch-free, NumPy or CuPy).

* ``ftests``: batched nested F-tests in closed form (:func:`nested_f_tests`).
* ``hac``: the same tests with a Newey–West (HAC) covariance (:func:`hac_f_tests`),
  valid when the residuals are serially correlated.
* ``prewhiten``: the F-tests after an AR(p) filter of the data, ``p`` chosen on the
  restricted residuals (:func:`prewhitened_f_tests`).
* ``diagnostics``: Durbin–Watson and Ljung–Box of the restricted residuals.
* ``factors``: common factors of the steps (randomized SVD), for conditional tests.
* ``step_scale``: a multiplicative common factor (a learning-rate schedule, the
  gradient norm) and the row weights its heteroskedasticity calls for.
* ``inference``: all of them behind one function (:func:`granger_tests`).
* ``granger``: the tests of a Granger design's units (:func:`granger_f_tests`).
* ``streaming``: the same tests from moments accumulated while recording
  (:class:`StreamingGrangerTests`), without storing the trajectory.
* ``multitest``: BH, BY, Holm and Bonferroni corrections (:func:`adjust_pvalues`).
"""

from .ftests import FTestResults, f_sf, nested_f_tests
from .granger import granger_f_tests
from .hac import hac_f_tests
from .inference import INFERENCES, granger_tests
from .prewhiten import prewhitened_f_tests
from .multitest import METHODS, adjust_pvalues
from .streaming import StreamingGrangerTests

__all__ = ["FTestResults", "INFERENCES", "METHODS", "StreamingGrangerTests", "adjust_pvalues", "f_sf", "granger_f_tests", "granger_tests", "hac_f_tests",
           "nested_f_tests", "prewhitened_f_tests"]
