"""What SDK users call on a RemoteConversation beyond the first run."""

from __future__ import annotations

import hashlib
import time

import httpx

from openhands.sdk import Conversation, Workspace
from openhands.sdk.conversation.state import ConversationExecutionStatus as Status
from openhands.sdk.event import (
    InterruptEvent,
    MessageEvent,
    PauseEvent,
    UserRejectObservation,
)
from openhands.sdk.event.conversation_state import ConversationStateUpdateEvent
from openhands.sdk.security.confirmation_policy import AlwaysConfirm, NeverConfirm
from openhands.tools.preset.default import get_default_agent

from conftest import (
    BERTH_API_KEY,
    BERTH_CONTROL_URL,
    LLM_BASE_URL,
    actions,
    api,
    messages,
    observations,
    say,
    scripted,
    server_events,
    stored,
    terminal,
    text_of,
    unique_working_dir,
    wait_for,
    wait_status,
)


def test_a_second_turn_continues_the_same_conversation(conversation_factory, workspace):
    conversation = conversation_factory()
    conversation.send_message(
        scripted(
            "Remember a number, then read it back when asked.",
            terminal("echo $((6*7)) > number.txt && echo stored"),
            say("Stored it."),
            # the second user message's turns
            terminal("echo $(( $(cat number.txt) + 1 ))"),
            say("It was 42; plus one is 43."),
        )
    )
    conversation.run()
    assert conversation.state.execution_status == Status.FINISHED
    first_run = len(conversation.state.events)

    conversation.send_message("What was the number plus one?")
    conversation.run()
    assert conversation.state.execution_status == Status.FINISHED
    events = list(conversation.state.events)
    assert len(events) > first_run

    assert messages(events, "agent") == ["Stored it.", "It was 42; plus one is 43."]
    assert messages(events, "user")[1] == "What was the number plus one?"
    outputs = [text_of(o).splitlines()[0] for o in observations(events, "terminal")]
    # The second turn ran in the same sandbox, after the first: the file it wrote is still there.
    assert outputs == ["stored", "43"]
    # The second turn's message comes after the first turn's answer.
    ids = [e.id for e in events]
    second_message = next(e for e in events if isinstance(e, MessageEvent) and e.source == "user" and e.llm_message.content[0].text == "What was the number plus one?")
    first_answer = next(e for e in events if isinstance(e, MessageEvent) and e.source == "agent")
    assert ids.index(first_answer.id) < ids.index(second_message.id)


def test_pause_stops_after_the_current_step_and_run_resumes(conversation_factory):
    conversation = conversation_factory()
    conversation.send_message(
        scripted(
            "Count slowly.",
            terminal("sleep 2 && echo step-one"),
            terminal("echo step-two"),
            say("Counted to two."),
        )
    )
    conversation.run(blocking=False)
    wait_for(lambda: actions(list(conversation.state.events), "terminal"), 20, "the first command to start")
    conversation.pause()
    assert wait_status(conversation, {Status.PAUSED}, 20) == Status.PAUSED
    # Paused: the step in flight ended, no further step ran.
    time.sleep(1.5)
    events = server_events(conversation.id)
    assert [e["observation"]["content"][0]["text"].splitlines()[0] for e in events if e["kind"] == "ObservationEvent"] in ([], ["step-one"])
    assert not any(e["kind"] == "ActionEvent" and e["action"].get("command") == "echo step-two" for e in events)
    assert any(e["kind"] == "PauseEvent" for e in events)
    assert any(isinstance(e, PauseEvent) for e in wait_for(lambda: [e for e in conversation.state.events if isinstance(e, PauseEvent)], 10, "the PauseEvent on the socket"))

    conversation.run()
    assert conversation.state.execution_status == Status.FINISHED
    events = list(conversation.state.events)
    outputs = [text_of(o).splitlines()[0] for o in observations(events, "terminal")]
    assert outputs == ["step-one", "step-two"]
    assert messages(events, "agent") == ["Counted to two."]


def test_interrupt_cancels_the_llm_call_in_flight(conversation_factory):
    conversation = conversation_factory()
    conversation.send_message(
        scripted(
            "Think for a long time.",
            # the LLM takes 60 s to answer: interrupt must not wait for it
            say("Too late.", delayMs=60_000),
            say("Answered after the interrupt."),
        )
    )
    conversation.run(blocking=False)
    wait_status(conversation, {Status.RUNNING}, 20)
    time.sleep(1.0)  # the LLM call is in flight
    started = time.monotonic()
    conversation.interrupt()
    assert wait_status(conversation, {Status.PAUSED}, 15) == Status.PAUSED
    assert time.monotonic() - started < 10
    interrupts = wait_for(lambda: [e for e in conversation.state.events if isinstance(e, InterruptEvent)], 10, "an InterruptEvent")
    assert len(interrupts) == 1
    assert "Too late." not in messages(list(conversation.state.events), "agent")

    conversation.run()
    assert messages(list(conversation.state.events), "agent") == ["Answered after the interrupt."]


def test_conversation_state_reads_back_from_the_server(conversation_factory, workspace, llm):
    conversation = conversation_factory(tags={"suite": "pysdk"})
    conversation.send_message(scripted("Report state.", terminal("echo state"), say("Done.")))
    conversation.run()
    state = conversation.state
    assert state.id == conversation.id
    assert state.execution_status == Status.FINISHED
    assert isinstance(state.confirmation_policy, NeverConfirm)
    assert state.security_analyzer is None
    agent = state.agent
    assert agent.llm.model == llm.model and agent.llm.base_url == LLM_BASE_URL
    assert [t.name for t in agent.tools][:3] == ["terminal", "file_editor", "task_tracker"]
    assert state.workspace["working_dir"] == workspace.working_dir
    assert isinstance(state.persistence_dir, str) and conversation.id.hex in state.persistence_dir
    # Two agent LLM calls (at least: OpenHands' server asks it for a title too) of 100 prompt and
    # 20 completion tokens each, the stub's usage.
    usage = state.stats.get_combined_metrics().accumulated_token_usage
    assert usage.prompt_tokens >= 200 and usage.prompt_tokens % 100 == 0
    assert usage.completion_tokens * 5 == usage.prompt_tokens
    assert state.activated_knowledge_skills == []
    dump = state.model_dump()
    assert dump["id"] == str(conversation.id)
    assert dump["tags"] == {"suite": "pysdk"}
    # The socket-fed cache agrees with a fresh read.
    fresh = state.refresh_from_server()
    assert fresh["execution_status"] == "finished"
    assert fresh["agent"]["llm"]["model"] == llm.model


def test_events_and_callbacks_once_and_in_order_across_a_reconnect(llm, socket_cutter, open_conversations):
    seen: list = []
    workspace = Workspace(host=socket_cutter.url, api_key=BERTH_API_KEY, working_dir=unique_working_dir("reconnect"))
    conversation = Conversation(agent=get_default_agent(llm, cli_mode=True), workspace=workspace, callbacks=[seen.append], visualizer=None)
    open_conversations.append(conversation)
    conversation.send_message(
        scripted(
            "Two runs, the second while the socket is down.",
            terminal("echo run-one"),
            say("First run done."),
            terminal("echo run-two"),
            say("Second run done."),
        )
    )
    conversation.run()
    assert socket_cutter.socket_connections == 1

    # The network drops the socket; the second run happens while no socket can connect.
    socket_cutter.cut()
    conversation.send_message("Run again.")
    conversation.run(blocking=False)
    wait_for(lambda: api("GET", f"/api/conversations/{conversation.id}").json()["execution_status"] == "finished", 30, "the second run to finish")
    socket_cutter.restore()
    # The SDK reconnects by itself and replays what it missed to its callbacks.
    wait_for(lambda: "Second run done." in messages(seen, "agent"), 30, "the missed events to be replayed")
    assert socket_cutter.socket_connections >= 2

    log = server_events(conversation.id)
    log_ids = [e["id"] for e in log]
    # Every stored event reached the callbacks exactly once, in the server's order.
    delivered = [e.id for e in stored(seen) if e.id in set(log_ids)]
    assert len(delivered) == len(set(delivered)), "an event reached the callbacks twice"
    first_seen = log_ids.index(delivered[0])
    assert delivered == log_ids[first_seen:]
    # The SDK's event list is sorted by timestamp, so the server's timestamps must follow its order.
    assert [e["timestamp"] for e in log] == sorted(e["timestamp"] for e in log)
    assert [e.id for e in stored(conversation.state.events)] == log_ids

    # A new RemoteConversation on the same id sees the whole history once, in order, and new
    # events on its own socket.
    later: list = []
    again = Conversation(agent=get_default_agent(llm, cli_mode=True), workspace=Workspace(host=socket_cutter.url, api_key=BERTH_API_KEY, working_dir=workspace.working_dir), conversation_id=conversation.id, callbacks=[later.append], visualizer=None, delete_on_close=False)
    try:
        assert [e.id for e in stored(again.state.events)] == log_ids
        assert messages(list(again.state.events), "agent") == ["First run done.", "Second run done."]
        conversation.send_message("A third message.")
        wait_for(lambda: "A third message." in messages(later, "user"), 15, "the new message on the second socket")
        assert "A third message." in messages(seen, "user")
        assert [e for e in later if isinstance(e, MessageEvent) and e.id in set(log_ids)] == []
    finally:
        again.close()


def test_a_gateway_restart_between_runs_loses_and_repeats_nothing(llm, workspace, open_conversations):
    """Berth restarts (same port, same storage) under an open conversation: the SDK's socket is told
    the server is going away, reconnects, and its callbacks see every stored event once, in order."""
    assert BERTH_CONTROL_URL, "the Jest spec gives the control URL"
    seen: list = []
    conversation = Conversation(agent=get_default_agent(llm, cli_mode=True), workspace=workspace, callbacks=[seen.append], visualizer=None)
    open_conversations.append(conversation)
    conversation.send_message(
        scripted(
            "Run, survive a restart, run again.",
            terminal("echo before > mark.txt && cat mark.txt"),
            say("Before the restart."),
            terminal("cat mark.txt && echo after"),
            say("After the restart."),
        )
    )
    conversation.run()
    snapshots = lambda: [e for e in seen if isinstance(e, ConversationStateUpdateEvent) and e.key == "full_state"]  # noqa: E731
    before = len(snapshots())

    restarted = httpx.post(f"{BERTH_CONTROL_URL}/restart-gateway", timeout=120)
    assert restarted.status_code == 200, restarted.text
    # The socket comes back by itself (its first frame is a fresh full-state snapshot).
    wait_for(lambda: len(snapshots()) > before, 30, "the socket to reconnect")

    conversation.send_message("Again, after the restart.")
    conversation.run()
    assert conversation.state.execution_status == Status.FINISHED
    events = list(conversation.state.events)
    assert [text_of(o).splitlines() for o in observations(events, "terminal")] == [["before"], ["before", "after"]]
    assert messages(events, "agent") == ["Before the restart.", "After the restart."]

    log_ids = [e["id"] for e in server_events(conversation.id)]
    delivered = [e.id for e in stored(seen) if e.id in set(log_ids)]
    assert len(delivered) == len(set(delivered)), "an event reached the callbacks twice"
    assert delivered == log_ids[log_ids.index(delivered[0]) :]
    assert [e.id for e in stored(conversation.state.events)] == log_ids


def test_confirmation_policy_accept_and_reject(conversation_factory, workspace):
    conversation = conversation_factory()
    conversation.set_confirmation_policy(AlwaysConfirm())
    # The SDK's cached state learns the policy from the socket's ConversationStateUpdateEvent, which
    # may land after the POST's answer (against the reference server too): wait for it, don't race it.
    wait_for(lambda: isinstance(conversation.state.confirmation_policy, AlwaysConfirm), 10, "the policy's state update")
    conversation.send_message(
        scripted(
            "Make two files, asking first.",
            terminal("echo accepted > accepted.txt && echo made-accepted"),
            terminal("echo rejected > rejected.txt && echo made-rejected"),
            say("One accepted, one rejected."),
        )
    )
    conversation.run()
    assert conversation.state.execution_status == Status.WAITING_FOR_CONFIRMATION
    pending = actions(list(conversation.state.events), "terminal")
    assert [a.action.command for a in pending] == ["echo accepted > accepted.txt && echo made-accepted"]
    assert observations(list(conversation.state.events)) == []

    # Accept: POST …/events/respond_to_confirmation {"accept": true}, as the server's clients send it.
    res = conversation._client.post(f"/api/conversations/{conversation.id}/events/respond_to_confirmation", json={"accept": True, "reason": ""})
    assert res.status_code == 200, res.text
    wait_status(conversation, {Status.WAITING_FOR_CONFIRMATION}, 20)
    wait_for(lambda: len(actions(list(conversation.state.events), "terminal")) == 2, 10, "the second action")
    events = list(conversation.state.events)
    assert [text_of(o).splitlines()[0] for o in observations(events, "terminal")] == ["made-accepted"]

    # Reject: the SDK's reject_pending_actions (respond_to_confirmation {"accept": false}).
    conversation.reject_pending_actions("not this one")
    wait_for(lambda: [e for e in conversation.state.events if isinstance(e, UserRejectObservation)], 15, "the rejection")
    (rejection,) = [e for e in conversation.state.events if isinstance(e, UserRejectObservation)]
    assert rejection.rejection_reason == "not this one"
    assert rejection.action_id == actions(list(conversation.state.events), "terminal")[1].id

    # run() goes on after the rejection; the rejected command never ran.
    conversation.run()
    assert conversation.state.execution_status == Status.FINISHED
    assert messages(list(conversation.state.events), "agent") == ["One accepted, one rejected."]
    listing = workspace.file_download(f"{workspace.working_dir}/rejected.txt", "/dev/null")
    assert not listing.success
    assert workspace.file_download(f"{workspace.working_dir}/accepted.txt", "/dev/null").success


def test_secrets_reach_the_command_and_never_appear_in_events(conversation_factory):
    secret = "s3cr3t-" + hashlib.sha256(str(time.time()).encode()).hexdigest()[:16]
    digest = hashlib.sha256(secret.encode()).hexdigest()
    seen: list = []
    conversation = conversation_factory(secrets={"DEPLOY_TOKEN": secret}, callbacks=[seen.append])
    conversation.update_secrets({"OTHER_TOKEN": "other-" + secret[::-1]})
    conversation.send_message(
        scripted(
            "Use the deploy token.",
            terminal('printf %s "$DEPLOY_TOKEN" | sha256sum'),
            terminal("echo token=$DEPLOY_TOKEN other=$OTHER_TOKEN"),
            say("Used it."),
        )
    )
    conversation.run()
    events = list(conversation.state.events)
    hashed, echoed = observations(events, "terminal")
    # The command got the secret in its environment...
    assert text_of(hashed).split()[0] == digest
    # ...and what it printed of it is masked.
    assert text_of(echoed).splitlines()[0] == "token=<secret-hidden> other=<secret-hidden>"
    # Nowhere in the stored events, the socket's frames or the conversation's info.
    dumped = [e.model_dump_json() for e in events] + [e.model_dump_json() for e in seen]
    assert not any(secret in d or secret[::-1] in d for d in dumped)
    raw = api("GET", f"/api/conversations/{conversation.id}/events/search?limit=100").text
    assert secret not in raw and secret[::-1] not in raw
    info = api("GET", f"/api/conversations/{conversation.id}").text
    assert secret not in info and secret[::-1] not in info


def test_create_and_attach_by_request_as_1_58_clients_do(workspace, llm, open_conversations):
    """RemoteConversation.create(workspace, StartConversationRequest) with a chosen id and an initial
    message that runs; attach() by id; the same create again is the same conversation (idempotent
    create: 200, the initial message not sent twice)."""
    import uuid

    from openhands.sdk.conversation.impl.remote_conversation import RemoteConversation
    from openhands.sdk.conversation.request import SendMessageRequest, StartConversationRequest
    from openhands.sdk.llm import TextContent
    from openhands.sdk.workspace import LocalWorkspace

    chosen = uuid.uuid4()
    task = scripted("Created by request.", terminal("echo $((6*7))"), say("Created and ran."))
    request = StartConversationRequest(
        agent=get_default_agent(llm, cli_mode=True),
        workspace=LocalWorkspace(working_dir=workspace.working_dir),
        conversation_id=chosen,
        initial_message=SendMessageRequest(role="user", content=[TextContent(text=task)], run=True),
    )
    created = RemoteConversation.create(workspace, request, visualizer=None)
    open_conversations.append(created)
    assert created.id == chosen
    wait_for(lambda: "Created and ran." in messages(server_events_as_sdk(chosen), "agent"), 30, "the initial message's run")

    attached = RemoteConversation.attach(workspace, chosen, visualizer=None)
    try:
        assert [e.id for e in stored(attached.state.events)] == [e["id"] for e in server_events(chosen)]
        assert attached.state.agent.llm.model == llm.model
        (output,) = observations(list(attached.state.events), "terminal")
        assert text_of(output).splitlines()[0] == "42"
    finally:
        attached._ws_client and attached._ws_client.stop()

    again = api("POST", "/api/conversations", json=request.model_dump(mode="json", exclude_none=True, context={"expose_secrets": True}))
    assert again.status_code == 200, again.text
    assert again.json()["id"] == str(chosen)
    assert messages(server_events_as_sdk(chosen), "user") == [task]


def server_events_as_sdk(conversation_id) -> list:
    from openhands.sdk.event.base import Event

    return [Event.model_validate(e) for e in server_events(conversation_id)]
