"""What ``lockdown open TARGET`` turns each form of target into (no network involved)."""

from __future__ import annotations

import pytest

from lockdown.launch import LaunchError, Target, resolve


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (
            "https://exams.example.org/a/exam.toml",
            Target("url", "https://exams.example.org/a/exam.toml", False),
        ),
        (
            "https://exams.example.org/exam.toml#part",
            Target("url", "https://exams.example.org/exam.toml", False),
        ),
        (
            "https://exams.example.org/e.seb?k=1",
            Target("url", "https://exams.example.org/e.seb?k=1", False),
        ),
        ("https://exams.example.org/e.seb", Target("url", "https://exams.example.org/e.seb", True)),
        (
            "http://127.0.0.1:8080/exam.toml",
            Target("url", "http://127.0.0.1:8080/exam.toml", False),
        ),
        ("http://localhost/exam.toml", Target("url", "http://localhost/exam.toml", False)),
        (
            "lockdown://exams.example.org:8080/a/exam.toml?id=7",
            Target("url", "http://exams.example.org:8080/a/exam.toml?id=7", False),
        ),
        (
            "lockdowns://exams.example.org/a/exam.toml#x",
            Target("url", "https://exams.example.org/a/exam.toml", False),
        ),
        (
            "LOCKDOWNS://exams.example.org/exam.toml",
            Target("url", "https://exams.example.org/exam.toml", False),
        ),
        ("seb://exams.example.org/e.seb", Target("url", "http://exams.example.org/e.seb", True)),
        (
            "sebs://exams.example.org/quiz/start?id=3",
            Target("url", "https://exams.example.org/quiz/start?id=3", True),
        ),
        ("exam.toml", Target("file", "exam.toml", False)),
        (
            "/home/candidate/Downloads/Exam.SEB",
            Target("file", "/home/candidate/Downloads/Exam.SEB", True),
        ),
    ],
)
def test_targets_resolve_to_a_file_or_a_download(target: str, expected: Target) -> None:
    assert resolve(target) == expected


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("http://exams.example.org/exam.toml", "cannot open http:// links"),
        ("ftp://exams.example.org/exam.toml", "cannot open ftp:// links"),
        ("file:///tmp/exam.toml", "cannot open file:// links"),
        ("lockdown:///exam.toml", "the link names no server"),
        ("sebs://", "the link names no server"),
    ],
)
def test_other_targets_are_refused_with_one_line(target: str, message: str) -> None:
    with pytest.raises(LaunchError) as caught:
        resolve(target)
    text = str(caught.value)
    assert message in text and "\n" not in text
    assert text.startswith(target)
