import pytest

from dreamcs.schedule import C, ScheduleError, alpha_schedule, validate_schedule


def test_constant():
    assert C(0.5, 0) == 0.5 and C(3, 10_000) == 3.0


def test_linear_clamped_four_items():
    s = [100, 0.0, 1.0, 300]
    assert C(s, 0) == 0.0
    assert C(s, 100) == 0.0
    assert C(s, 200) == pytest.approx(0.5)
    assert C(s, 250) == pytest.approx(0.75)
    assert C(s, 300) == 1.0
    assert C(s, 10_000) == 1.0


def test_falling_and_three_items():
    assert C([0.98, 0.5, 100], 50) == pytest.approx(0.74)
    assert C([0.98, 0.5, 100], 500) == pytest.approx(0.5)
    # a float end step still means a step (not an epoch, unlike threestudio)
    assert C([0, 1.0, 0.0, 10.0], 5) == pytest.approx(0.5)


def test_step_function_when_start_equals_end():
    assert C([10, 0.0, 2.0, 10], 9) == 0.0
    assert C([10, 0.0, 2.0, 10], 10) == 2.0


def test_alpha_rises_from_min_to_max():
    s = alpha_schedule(alpha_min=0.1, alpha_max=0.9, start_step=10, end_step=50)
    values = [C(s, t) for t in range(0, 80)]
    assert values[0] == pytest.approx(0.1) and values[-1] == pytest.approx(0.9)
    assert all(b >= a for a, b in zip(values, values[1:], strict=False))
    assert C(s, 30) == pytest.approx(0.5)


@pytest.mark.parametrize("bad", [[1, 2], [1, 2, 3, 4, 5], "abc", [0, "x", 1, 2], True, [10, 0.0, 1.0, 5]])
def test_bad_schedules_are_named(bad):
    with pytest.raises(ScheduleError, match="reward.alpha"):
        validate_schedule(bad, "reward.alpha")
