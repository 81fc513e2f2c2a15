"""What a simulation checks before it starts: its output directory and options that cannot work."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from fedchain.chain.backends import free_port
from fedchain.chain.errors import ChainUnreachable
from fedchain.contribution.shapley import MAX_SHAPLEY_PARTICIPANTS
from fedchain.errors import FedchainError
from fedchain.settings import RunSettings, SettingsError
from fedchain.simulation.preflight import (
    blocking_file,
    check_runnable,
    clear_run,
    probe_node,
    run_entries,
)


def test_a_file_in_the_way_of_the_output_directory_is_found(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    assert blocking_file(tmp_path / "notes.txt") == tmp_path / "notes.txt"
    assert blocking_file(tmp_path / "notes.txt" / "run") == tmp_path / "notes.txt"
    assert blocking_file(tmp_path) is None
    assert blocking_file(tmp_path / "new" / "run") is None


def test_a_run_is_recognised_by_any_file_it_writes(tmp_path: Path) -> None:
    assert run_entries(tmp_path) == []
    (tmp_path / "notes.txt").write_text("mine")
    assert run_entries(tmp_path) == []
    (tmp_path / "task.json").write_text("{}")  # a run killed before its first round
    assert run_entries(tmp_path) == [tmp_path / "task.json"]


def test_clearing_a_run_deletes_its_files_and_nothing_else(tmp_path: Path) -> None:
    # Prepare: a finished run, a temporary file of it, and the user's own files
    for name in ("summary.json", "run.json.tmp", "rounds.jsonl"):
        (tmp_path / name).write_text("{}")
    for name in ("store", "chain"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x").write_text("x")
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "data").mkdir()
    # Execute
    deleted = clear_run(tmp_path)
    # Assert
    assert sorted(p.name for p in deleted) == [
        "chain",
        "rounds.jsonl",
        "run.json.tmp",
        "store",
        "summary.json",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "notes.txt"]


def test_exact_shapley_over_more_participants_than_it_scores_is_refused() -> None:
    too_many = RunSettings(contribution="shapley", num_clients=MAX_SHAPLEY_PARTICIPANTS + 1)
    with pytest.raises(SettingsError, match=f"at most {MAX_SHAPLEY_PARTICIPANTS} participants"):
        check_runnable(too_many)
    # Sampling half of them each round keeps every round within the limit.
    check_runnable(too_many.with_changes(fraction_train=0.5))


def test_the_cnn_on_a_table_is_refused() -> None:
    with pytest.raises(FedchainError, match="the cnn needs"):
        check_runnable(RunSettings(model="cnn"))


def test_a_node_that_is_not_there_is_refused_at_once() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    began = time.monotonic()
    with pytest.raises(ChainUnreachable, match="start one with `fedchain devnet`"):
        check_runnable(RunSettings(chain="rpc", rpc_url=url))
    assert time.monotonic() - began < 5


def test_an_rpc_url_that_is_not_http_is_refused() -> None:
    with pytest.raises(SettingsError, match="not an http"):
        probe_node("file:///etc/passwd")


@pytest.fixture
def node() -> Iterator[tuple[str, list[bytes]]]:
    """An HTTP server answering every POST with the next canned body."""
    answers: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            body = answers.pop(0)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", answers
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_node_that_answers_gives_its_chain_id(node: tuple[str, list[bytes]]) -> None:
    url, answers = node
    answers.append(json.dumps({"jsonrpc": "2.0", "id": 1, "result": "0x7a69"}).encode())
    assert probe_node(url) == 31337


def test_a_server_that_is_no_node_is_refused(node: tuple[str, list[bytes]]) -> None:
    url, answers = node
    answers.append(b"<html>hello</html>")
    with pytest.raises(ChainUnreachable, match="not a JSON-RPC chain id"):
        probe_node(url)
