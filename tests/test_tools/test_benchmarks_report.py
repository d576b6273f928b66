"""``BENCHMARKS.md`` is generated from ``benchmarks/results/*.jsonl`` by
``python -m benchmarks.report``: the file equals the generator's output, stays short, and
every row names the command that produced it and the commit that recorded it."""

import os.path as osp

from benchmarks import report
from benchmarks.harness import ROW_FIELDS, record_row


def test_benchmarks_md_is_the_generators_output_and_short():
    # catches: a hand edit of BENCHMARKS.md, or rows added without regenerating it
    rows = report.load()
    with open(report.OUT) as f:
        text = f.read()
    assert text == report.render(rows), 'run python -m benchmarks.report'
    assert text.count('\n') < 400
    assert text.split('\n## ')[1].startswith('Headline')  # it opens with the headline


def test_every_row_names_its_command_and_commit():
    rows = report.load()
    assert rows
    for r in rows:
        missing = [k for k in ROW_FIELDS if k not in r or r[k] in ('', None)
                   and k not in ('seed', 'table')]
        assert not missing, (r, missing)
        assert r['command'].strip() and r['commit'].strip()


def test_record_row_fills_commit_machine_and_date(tmp_path, monkeypatch):
    monkeypatch.setenv('SSVISION_BENCH_RESULTS', str(tmp_path))
    row = record_row('demo', 'task', 'method', 'metric', 1.25, 0, command='python -m x')
    assert row['commit'] and row['machine'] and len(row['date']) == 10
    assert record_row('demo', 'task', 'method', 'metric', None, 0, command='c') is None
    rows = report.load(str(tmp_path))
    assert [r['value'] for r in rows] == [1.25]
    assert osp.exists(tmp_path / 'demo.jsonl')
    assert '| task | method | 1.25 | ' in report.render(rows)
