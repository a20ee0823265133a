"""The RemoteWorkspace helpers (commands, file transfer, git) against Berth, top level and under
a sandbox's own agent-server prefix."""

from __future__ import annotations

import hashlib
import os

import pytest

from openhands.sdk import Conversation, Workspace
from openhands.sdk.workspace import RemoteWorkspace
from openhands.sdk.conversation.state import ConversationExecutionStatus as Status
from openhands.sdk.git.models import GitChangeStatus
from openhands.tools.preset.default import get_default_agent

from conftest import (
    BERTH_API_KEY,
    BERTH_URL,
    WORKDIR,
    api,
    messages,
    observations,
    say,
    scripted,
    terminal,
    text_of,
    tool,
)


@pytest.fixture
def started(conversation_factory, workspace):
    """A conversation in the test's working dir, run once so its sandbox holds a file."""
    conversation = conversation_factory()
    conversation.send_message(scripted("Leave a file.", terminal("echo $((6*7)) > answer.txt && echo ok"), say("Left answer.txt.")))
    conversation.run()
    assert conversation.state.execution_status == Status.FINISHED
    return conversation


def test_execute_command_runs_where_the_conversation_works(started, workspace):
    result = workspace.execute_command("cat answer.txt && pwd >/dev/null", cwd=workspace.working_dir, timeout=15)
    assert (result.exit_code, result.stdout, result.stderr) == (0, "42\n", "")
    assert not result.timeout_occurred


def test_execute_command_without_a_cwd_runs_in_the_home_sandbox(workspace):
    """Berth has one home sandbox per tenant where OpenHands has one machine: a command without a
    cwd runs there (README "Top-level /api/file|bash|git are routed by path")."""
    home = api("GET", "/api/file/home").json()["home"]
    result = workspace.execute_command("echo $((6*7)) && pwd")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == ["42", home]


def test_a_conversation_scoped_workspace_acts_in_the_conversation_runtime(started, workspace, tmp_path):
    """RemoteWorkspace(runtime_conversation_id=…) sends file, command and git calls to
    /api/conversations/{id}/…, the conversation's own runtime (agent server 1.58)."""
    scoped = RemoteWorkspace(host=BERTH_URL, api_key=BERTH_API_KEY, working_dir=workspace.working_dir, runtime_conversation_id=started.id)
    try:
        result = scoped.execute_command("cat answer.txt", cwd=workspace.working_dir, timeout=15)
        assert (result.exit_code, result.stdout) == (0, "42\n")
        assert scoped.file_upload(b"scoped\n", f"{workspace.working_dir}/scoped.txt").success
        back = tmp_path / "scoped.txt"
        assert workspace.file_download(f"{workspace.working_dir}/scoped.txt", back).success
        assert back.read_text() == "scoped\n"
    finally:
        scoped.reset_client()


def test_execute_command_reports_stderr_and_the_exit_code(started, workspace):
    result = workspace.execute_command("echo out; echo err >&2; exit 3", cwd=workspace.working_dir, timeout=15)
    assert result.exit_code == 3
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"


def test_execute_command_times_out_on_the_client(started, workspace):
    result = workspace.execute_command("sleep 5; echo late", cwd=workspace.working_dir, timeout=1)
    assert result.exit_code == -1
    assert result.timeout_occurred
    assert "late" not in result.stdout


def test_file_upload_and_download_round_trip_bytes(started, workspace, tmp_path):
    payload = bytes(range(256)) * 257 + b"\x00end"
    local = tmp_path / "payload.bin"
    local.write_bytes(payload)
    target = f"{workspace.working_dir}/uploads/payload.bin"

    uploaded = workspace.file_upload(local, target)
    assert uploaded.success, uploaded.error
    assert uploaded.destination_path == target
    from_bytes = workspace.file_upload(b"in memory\n", f"{workspace.working_dir}/uploads/memory.txt")
    assert from_bytes.success, from_bytes.error

    back = tmp_path / "back.bin"
    downloaded = workspace.file_download(target, back)
    assert downloaded.success, downloaded.error
    assert downloaded.file_size == len(payload)
    assert back.read_bytes() == payload

    # A file the agent wrote, downloaded by its path in the working dir.
    answer = tmp_path / "answer.txt"
    assert workspace.file_download(f"{workspace.working_dir}/answer.txt", answer).success
    assert answer.read_text() == "42\n"

    missing = workspace.file_download(f"{workspace.working_dir}/no-such-file", tmp_path / "missing")
    assert not missing.success


def test_uploaded_files_are_what_the_agent_reads(conversation_factory, workspace):
    payload = os.urandom(4096)
    digest = hashlib.sha256(payload).hexdigest()
    conversation = conversation_factory()
    assert workspace.file_upload(payload, f"{workspace.working_dir}/blob.bin").success
    conversation.send_message(scripted("Hash the blob.", terminal("sha256sum blob.bin"), say("Hashed.")))
    conversation.run()
    (hashed,) = observations(list(conversation.state.events), "terminal")
    assert text_of(hashed).split()[0] == digest


def test_git_changes_and_diff_of_what_the_agent_changed(conversation_factory, workspace):
    conversation = conversation_factory()
    git = "git -c user.name=sdk -c user.email=sdk@example.com"
    conversation.send_message(
        scripted(
            "Make a repository, commit, then change it.",
            terminal(f"git init -q repo && cd repo && printf 'one\\ntwo\\n' > kept.txt && printf 'old\\n' > gone.txt && git add -A && {git} commit -qm init && echo committed"),
            tool("file_editor", command="str_replace", path=f"{WORKDIR}/repo/kept.txt", old_str="two", new_str="TWO"),
            tool("file_editor", command="create", path=f"{WORKDIR}/repo/added.txt", file_text="new\n"),
            terminal("rm gone.txt && echo removed"),
            say("Changed."),
            working_dir=workspace.working_dir,
        )
    )
    conversation.run()
    events = list(conversation.state.events)
    assert [text_of(o).splitlines()[0] for o in observations(events, "terminal")] == ["committed", "removed"]
    assert not any(o.observation.is_error for o in observations(events, "file_editor"))

    changes = {c.path.name: c.status for c in workspace.git_changes("repo")}
    assert changes == {"kept.txt": GitChangeStatus.UPDATED, "added.txt": GitChangeStatus.ADDED, "gone.txt": GitChangeStatus.DELETED}

    # OpenHands gives both sides without their final newline.
    diff = workspace.git_diff("repo/kept.txt")
    assert (diff.original, diff.modified) == ("one\ntwo", "one\nTWO")


def test_git_diff_sides_a_file_lacks_are_empty_strings(conversation_factory, workspace):
    """OpenHands' get_git_diff answers "" (not null) for the side an added or deleted file lacks."""
    conversation = conversation_factory()
    git = "git -c user.name=sdk -c user.email=sdk@example.com"
    conversation.send_message(
        scripted(
            "Add one file and delete another.",
            terminal(f"git init -q repo && cd repo && printf 'old\\n' > gone.txt && git add -A && {git} commit -qm init && rm gone.txt && printf 'new\\n' > added.txt && echo done"),
            say("Done."),
        )
    )
    conversation.run()
    assert [text_of(o).splitlines()[0] for o in observations(list(conversation.state.events), "terminal")] == ["done"]
    added = workspace.git_diff("repo/added.txt")
    assert (added.original, added.modified) == ("", "new")
    gone = workspace.git_diff("repo/gone.txt")
    assert (gone.original, gone.modified) == ("old", "")


def test_a_sandbox_prefixed_host_is_an_agent_server_of_its_own(llm, tmp_path):
    created = api("POST", "/api/sandboxes", json={})
    assert created.status_code in (200, 201), created.text
    sandbox = created.json()
    host = f"{BERTH_URL}/sandboxes/{sandbox['id']}"
    assert sandbox.get("url") == host
    workspace = Workspace(host=host, api_key=BERTH_API_KEY, working_dir="/workspace/project")
    try:
        assert workspace.alive
        assert workspace.get_server_info()["title"] == "OpenHands Agent Server"

        conversation = Conversation(agent=get_default_agent(llm, cli_mode=True), workspace=workspace, visualizer=None)
        try:
            conversation.send_message(
                scripted(
                    "Work in the sandbox.",
                    terminal("echo $((6*7)) > answer.txt && cat answer.txt"),
                    say("Done in the sandbox."),
                )
            )
            conversation.run()
            events = list(conversation.state.events)
            (output,) = observations(events, "terminal")
            assert text_of(output).splitlines()[0] == "42"
            assert messages(events, "agent") == ["Done in the sandbox."]
            # The conversation belongs to this sandbox's server only.
            listed = api("GET", f"/sandboxes/{sandbox['id']}/api/conversations/search").json()["items"]
            assert [c["id"] for c in listed] == [str(conversation.id)]
            assert api("GET", f"/api/conversations/{conversation.id}").json().get("sandbox_id") == sandbox["id"]

            # The workspace helpers act in that same sandbox.
            result = workspace.execute_command("cat answer.txt", cwd=workspace.working_dir, timeout=15)
            assert (result.exit_code, result.stdout) == (0, "42\n")
            assert workspace.file_upload(b"uploaded\n", f"{workspace.working_dir}/up.txt").success
            back = tmp_path / "up.txt"
            assert workspace.file_download(f"{workspace.working_dir}/up.txt", back).success
            assert back.read_text() == "uploaded\n"
            answer = tmp_path / "answer.txt"
            assert workspace.file_download(f"{workspace.working_dir}/answer.txt", answer).success
            assert answer.read_text() == "42\n"
        finally:
            conversation.close()
    finally:
        workspace.reset_client()
        assert api("DELETE", f"/api/sandboxes/{sandbox['id']}").status_code == 200
