"""The verdict lines of `hbnn bench models`: which target a thread row is judged by, idle or loaded."""
from bench_modules import load

bench_models = load("bench_models")


def _row(arch, engine, precision, threads, ms):
    return {"arch": arch, "engine": engine, "precision": precision, "threads": threads, "median_ms": ms}


def _rows(one, two):
    return [_row("alexnet", "hbnn (edge.Interpreter)", "beta (inf,inf)", 1, one),
            _row("alexnet", "hbnn (edge.Interpreter)", "beta (inf,inf)", 2, two),
            _row("lenet", "hbnn (edge.Interpreter)", "beta (16,2)", 1, 0.200),
            _row("lenet", "hbnn (edge.Interpreter)", "beta (16,2)", 2, 0.203)]


def _line(lines, start):
    return next(line for line in lines if line.startswith(start))


def test_idle_threads_need_1_7x():
    assert _line(bench_models.targets(_rows(6.0, 3.4)), "AlexNet beta (inf,inf) 2 threads").endswith("PASS")
    assert _line(bench_models.targets(_rows(6.0, 4.0)), "AlexNet beta (inf,inf) 2 threads").endswith("FAIL")


def test_loaded_threads_need_no_more_than_10_percent_slower():
    line = _line(bench_models.targets(_rows(6.0, 6.5), busy=1), "AlexNet beta (inf,inf) 2 threads")
    assert "with 1 busy process(es)" in line and line.endswith("PASS")
    assert _line(bench_models.targets(_rows(6.0, 6.7), busy=1), "AlexNet beta (inf,inf) 2 threads").endswith("FAIL")


def test_lenet_no_slower_allows_only_the_noise_margin():
    assert _line(bench_models.targets(_rows(6.0, 3.0)), "LeNet beta (16,2) 2 threads").endswith("PASS")
    rows = _rows(6.0, 3.0)
    rows[-1]["median_ms"] = 0.210  # 5 % slower
    assert _line(bench_models.targets(rows), "LeNet beta (16,2) 2 threads").endswith("FAIL")
