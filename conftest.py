# -*- coding: utf-8 -*-
"""Collection rules for ``pytest tests --doctest-modules ot_multimarginal``.

The neural subpackage is torch-only (an extra): without torch its modules
cannot be imported, so their doctests are not collected.

**Slow cases.** The README's command (``python -m pytest -q tests
--doctest-modules ot_multimarginal``) deselects the cases marked ``slow``
(:func:`pytest_collection_modifyitems` below), so that it runs in a few
minutes on a 2-core machine; CI (``.ci/run``) then runs them with
``-m slow``. Any ``-m`` expression (``-m "slow or not slow"``: everything)
or a test named by its node id (``tests/test_x.py::test_y``) selects them
again. A case is slow when decorated ``@pytest.mark.slow`` or listed in
:data:`SLOW` below: the cases that took more than about 1.5 s each in a full
run (``--durations``, OMP_NUM_THREADS=1, 2 cores), together about two thirds
of the suite's time. The cheap parametrisations of the same tests stay in
the default run.
"""

import importlib.util

import pytest

collect_ignore = [] if importlib.util.find_spec("torch") else ["ot_multimarginal/neural"]

# node ids (a test function: all its parametrisations; with "[...]": that one), seconds measured
SLOW = {
    "tests/test_sinkhorn.py::test_overrelaxation_cuts_sweeps_in_the_slow_linear_regime": 33,
    "tests/test_sinkhorn.py::test_overrelaxation_same_solution": 19,
    "tests/test_strategies.py::test_accelerated_needs_fewer_iterations": 27,
    "tests/test_strategies.py::test_log_mode_engine_and_warmstart[sinkhorn_accelerated]": 2.6,
    "tests/test_strategies.py::test_autodiff_through_the_loop[sinkhorn_accelerated]": 2.4,
    "tests/test_strategies.py::test_zero_weights[sinkhorn_accelerated]": 2.0,
    "tests/test_neural_gromov.py::test_sigkilled_job_resumes_to_the_bit": 20,
    "tests/test_neural_gromov.py::test_killed_run_resumes_to_the_bit": 11,
    "tests/test_neural_gromov.py::test_same_matchings_on_the_recovery_problem": 5.8,
    "tests/test_neural_gromov.py::test_finished_run_resumes_without_fitting_and_mismatch_raises": 4.8,
    "tests/test_neural_gromov.py::test_stops_only_at_a_fixed_point_of_A": 1.8,
    "tests/test_neural_distributed.py::test_killed_job_resumes_on_the_same_trajectory": 3.5,
    "tests/test_examples.py::test_example_runs": 15,  # the documentation build runs every example too
    "tests/test_package.py::test_neural_names_are_lazy": 7.7,  # fresh interpreters
    "tests/test_package.py::test_neural_without_torch_says_how_to_install": 4.0,
    "tests/test_readme.py::test_readme_python_blocks_run": 7.1,
    "tests/test_docs.py::test_documentation_code_blocks_run": 5.6,
    "tests/test_neural.py::test_plan_density_integrates_to_one": 2.6,
    "tests/test_neural.py::test_accuracy_against_sinkhorn[complete-3-200-10-0.1-0.01]": 1.8,
    "tests/test_properties.py::test_dense_solve_invariants": 2.4,
    "tests/test_properties.py::test_structured_equals_dense_and_rounds_exactly": 2.2,
    "tests/test_gromov.py::test_k2_joint_normalisation_is_pot_with_scaled_eps": 2.1,
    "tests/test_costs_graph.py::test_solve_small_reg[cycle_chord]": 2.1,
    "tests/test_costs_graph.py::test_solve_small_reg[circle]": 1.6,
    "tests/test_newton.py::test_same_plan_as_cyclic_other_graphs[complete-sizes1]": 1.5,
    "tests/test_validation_distributed.py::test_failure_on_rank_0_ends_every_rank_with_the_error": 12,
    "tests/test_properties_neural.py::test_mgw_neural_is_finite": 6.7,
    "tests/test_properties_neural.py::test_emot_neural_is_finite_and_a_lower_bound": 4.7,
    "tests/test_properties_neural.py::test_mgw_sinkhorn_is_finite_with_the_weights_as_marginals": 4.3,
    "ot_multimarginal/neural/api.py::ot_multimarginal.neural.api.emot_neural": 4.6,
    "ot_multimarginal/neural/gromov.py::ot_multimarginal.neural.gromov.NeuralMGW": 1.6,
}
# whole families: the torch parametrisations of the shift-invariance tables (103 s in all; the NumPy ones stay),
# and the tests sharing the two-rank torchrun launch of test_neural_distributed.py (one launch, 6 s)
SLOW_TORCH_PARAMS = tuple(
    "tests/test_shift_invariance.py::" + name
    for name in (
        "test_exact_table",
        "test_converged_table",
        "test_factored_plan_shift",
        "test_warmstart_maps_potentials_back",
    )
)


def _is_slow(item):
    nodeid = item.nodeid
    function = nodeid.split("[")[0]
    if nodeid in SLOW or function in SLOW:
        return True
    if function in SLOW_TORCH_PARAMS and "[torch" in nodeid:
        return True
    return "two_ranks" in getattr(item, "fixturenames", ())


@pytest.hookimpl(tryfirst=True)  # the markers must be on before pytest's -m selection
def pytest_collection_modifyitems(config, items):
    for item in items:
        if _is_slow(item):
            item.add_marker(pytest.mark.slow)
    # the default run deselects the slow cases; -m (e.g. -m slow) or a test named by its node id (path::name) runs them
    if config.option.markexpr or any("::" in str(arg) for arg in config.args):
        return
    slow = [item for item in items if item.get_closest_marker("slow") is not None]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if item.get_closest_marker("slow") is None]
