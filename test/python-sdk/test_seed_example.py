"""The "Connect From Python" example, as a user writes it, against Berth."""

from __future__ import annotations

from openhands.sdk import LLM, Conversation, Workspace
from openhands.sdk.conversation.impl.remote_conversation import RemoteConversation
from openhands.sdk.conversation.state import ConversationExecutionStatus
from openhands.sdk.event import SystemPromptEvent
from openhands.tools.preset.default import get_default_agent

from conftest import (
    BERTH_API_KEY,
    BERTH_URL,
    LLM_API_KEY,
    LLM_BASE_URL,
    WORKDIR,
    actions,
    api,
    messages,
    observations,
    say,
    scripted,
    stored,
    terminal,
    text_of,
    tool,
    unique_working_dir,
)


def test_the_seed_example_runs_the_default_agent_and_its_tools(tmp_path):
    working_dir = unique_working_dir("seed")
    notes = f"{WORKDIR}/notes.md"
    task = scripted(
        "Compute 6*7 in the terminal, write it down in notes.md and plan the rest.",
        terminal("echo $((6*7))", text="Let me compute it."),
        tool("file_editor", command="create", path=notes, file_text="six times seven is 42\n"),
        tool("file_editor", command="view", path=notes),
        tool("task_tracker", command="plan", task_list=[{"title": "Check the answer", "notes": "", "status": "done"}]),
        say("6*7 is 42; it is in notes.md."),
        working_dir=working_dir,
    )

    # --- the example, as written ---
    llm = LLM(model="openai/stub-model", base_url=LLM_BASE_URL, api_key=LLM_API_KEY)
    workspace = Workspace(host=BERTH_URL, api_key=BERTH_API_KEY, working_dir=working_dir)
    conversation = Conversation(agent=get_default_agent(llm, cli_mode=True), workspace=workspace)
    conversation.send_message(task)
    conversation.run()
    conversation_id = conversation.id
    try:
        # --- what it did ---
        events = list(conversation.state.events)
        assert conversation.state.execution_status == ConversationExecutionStatus.FINISHED

        tools = {t.name for t in conversation.state.agent.tools}
        assert {"terminal", "file_editor", "task_tracker"} <= tools

        (command,) = actions(events, "terminal")
        assert command.action.command == "echo $((6*7))"
        assert command.thought[0].text == "Let me compute it."
        (output,) = observations(events, "terminal")
        assert output.action_id == command.id
        assert output.observation.exit_code == 0
        # The command's output, not its text: the shell ran it.
        assert text_of(output).splitlines()[0] == "42"

        created, viewed = observations(events, "file_editor")
        assert not created.observation.is_error, text_of(created)
        assert not viewed.observation.is_error, text_of(viewed)
        assert "six times seven is 42" in text_of(viewed)
        (plan,) = observations(events, "task_tracker")
        assert not plan.observation.is_error, text_of(plan)
        assert [t.title for t in plan.observation.task_list] == ["Check the answer"]

        assert messages(events, "user") == [task]
        assert messages(events, "agent") == ["6*7 is 42; it is in notes.md."]
        # The file is really in the workspace the conversation ran in.
        downloaded = tmp_path / "notes.md"
        assert workspace.file_download(f"{working_dir}/notes.md", downloaded).success
        assert downloaded.read_text() == "six times seven is 42\n"

    finally:
        conversation.close()
    # Conversation(...) deletes its server-side conversation on close.
    assert api("GET", f"/api/conversations/{conversation_id}").status_code == 404


def test_the_system_prompt_comes_first_as_openhands_emits_it(conversation_factory):
    """OpenHands' send_message makes the agent ready (SystemPromptEvent) before it appends the message."""
    conversation = conversation_factory()
    conversation.send_message(scripted("Say hello.", say("Hello.")))
    conversation.run()
    kinds = [type(e).__name__ for e in stored(conversation.state.events)]
    assert kinds.index("SystemPromptEvent") < kinds.index("MessageEvent"), kinds
    system = next(e for e in conversation.state.events if isinstance(e, SystemPromptEvent))
    assert {t.name for t in system.tools} >= {"terminal", "file_editor", "task_tracker"}


def test_a_null_observability_span_name_is_accepted(workspace, llm, open_conversations):
    """RemoteConversation used to send "observability_span_name": null, which Berth answered with 422."""
    conversation = RemoteConversation(
        agent=get_default_agent(llm, cli_mode=True),
        workspace=workspace,
        observability_span_name=None,  # type: ignore[arg-type]
        visualizer=None,
    )
    open_conversations.append(conversation)
    conversation.send_message(scripted("Null span name.", say("Accepted.")))
    conversation.run()
    assert messages(list(conversation.state.events), "agent") == ["Accepted."]

    # And the raw body, every observability field null, as older SDKs send it.
    body = {
        "agent": get_default_agent(llm, cli_mode=True).model_dump(mode="json", context={"expose_secrets": True}),
        "workspace": {"kind": "LocalWorkspace", "working_dir": workspace.working_dir},
        "observability_span_name": None,
        "observability_parent_span_context": None,
        "observability_metadata": None,
        "observability_tags": None,
        "user_id": None,
    }
    res = api("POST", "/api/conversations", json=body)
    assert res.status_code in (200, 201), res.text
    assert api("DELETE", f"/api/conversations/{res.json()['id']}").status_code == 200


def test_the_llm_settings_reach_the_agent_the_server_runs(conversation_factory, llm):
    conversation = conversation_factory()
    agent = conversation.state.agent
    assert agent.llm.model == "openai/stub-model"
    assert agent.llm.base_url == LLM_BASE_URL
    # The key is stored, and never shown back.
    assert LLM_API_KEY not in api("GET", f"/api/conversations/{conversation.id}").text
