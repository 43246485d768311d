from pathlib import Path

from bench.results import write_section


def test_sections_are_rewritten_in_place_and_others_survive(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    write_section("a", "| x |\n|---|\n| 1 |", path)
    write_section("b", "| y |\n|---|\n| 2 |", path)
    write_section("a", "| x |\n|---|\n| 3 |", path)
    text = path.read_text()
    assert text.startswith("# Benchmark results")
    assert "| 3 |" in text and "| 1 |" not in text
    assert "| 2 |" in text
    assert text.index("<!-- a:start -->") < text.index("<!-- b:start -->")
