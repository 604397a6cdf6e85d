"""scripts/shapes_world.py: the bundled model's world and the scorer of bench/bundled_model.py.
The scorer must give exact renders full marks, or the benchmark measures the scorer."""

import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import shapes_world as W  # noqa: E402


def test_exact_renders_of_the_benchmark_scenes_score_full_marks():
    for scene in W.eval_scenes(random.Random(2024), 12):
        scores = W.score_image(scene, W.render(scene))
        wrong = {k: v for k, v in scores.items() if k != "analysis" and not all(v)}
        assert not wrong, (scene.caption, wrong, scores["analysis"])


@pytest.mark.parametrize("shape", W.SHAPES)
def test_size_is_judged_by_extent_not_area(shape):
    """A big star covers less area than a small square; both must still be scored as asked."""
    for size in W.SIZES:
        for r in W.SIZE_RANGES[size]:
            scene = W.Scene("size", "white", [W.Obj(shape, "red", 32.0, 32.0, r)],
                            f"a {size} red {shape} on a white background", size=size)
            assert W.score_image(scene, W.render(scene))["size"] == [True], (shape, size, r)
