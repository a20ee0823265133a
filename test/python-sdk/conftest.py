"""Shared fixtures of the OpenHands Python SDK suite.

test/python-sdk.e2e-spec.ts starts a real Berth server and the scripted LLM (libs/testing LlmStub)
and runs this suite with:

    BERTH_URL       the server (its agent-server surface)
    BERTH_API_KEY   a session API key of it
    LLM_BASE_URL    the scripted LLM, given to the agent's LLM as base_url
    BERTH_CONTROL_URL  the test process: POST /restart-gateway restarts Berth on the same port

The scripted LLM answers each conversation from the script in the conversation's first user
message: `scripted(task, turn, ...)` appends "STUB_SCRIPT: <json list of turns>" to the task; turn
i answers the conversation's i-th LLM call (see test/support/python-sdk.ts).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from openhands.sdk import LLM, Conversation, Workspace
from openhands.sdk.conversation.state import ConversationExecutionStatus
from openhands.sdk.event import ActionEvent, MessageEvent, ObservationEvent
from openhands.sdk.event.conversation_state import ConversationStateUpdateEvent

BERTH_URL = os.environ["BERTH_URL"].rstrip("/")
BERTH_API_KEY = os.environ["BERTH_API_KEY"]
LLM_BASE_URL = os.environ["LLM_BASE_URL"]
BERTH_CONTROL_URL = os.environ.get("BERTH_CONTROL_URL")
LLM_API_KEY = "sk-python-sdk-stub"
STUB_MARKER = "STUB_SCRIPT:"
# Where working dirs go: Berth places any absolute path inside the conversation's sandbox.
WORKSPACE_ROOT = os.environ.get("SDK_WORKSPACE_ROOT", "/workspace")


# In a scripted turn, the working directory the agent was told (see test/support/python-sdk.ts).
WORKDIR = "{{workdir}}"


def scripted(task: str, *turns: dict[str, Any], working_dir: str | None = None) -> str:
    """A first user message that carries the scripted LLM's answers for its conversation (the stub
    counts turns per distinct message: a nonce keeps every call's message distinct)."""
    where = f"\nWorking directory: {working_dir}" if working_dir else ""
    return f"{task}{where}\n{STUB_MARKER} {json.dumps(list(turns))}\nScript {uuid.uuid4().hex[:12]}"


def terminal(command: str, text: str | None = None) -> dict[str, Any]:
    turn: dict[str, Any] = {"toolCalls": [{"name": "terminal", "arguments": {"command": command}}]}
    if text is not None:
        turn["text"] = text
    return turn


def tool(name: str, **arguments: Any) -> dict[str, Any]:
    return {"toolCalls": [{"name": name, "arguments": arguments}]}


def say(text: str, **extra: Any) -> dict[str, Any]:
    return {"text": text, **extra}


def finish(message: str) -> dict[str, Any]:
    return tool("finish", message=message)


def make_llm(**extra: Any) -> LLM:
    return LLM(
        model="openai/stub-model",
        base_url=LLM_BASE_URL,
        api_key=SecretStr(LLM_API_KEY),
        usage_id="agent",
        num_retries=0,
        **extra,
    )


def unique_working_dir(name: str) -> str:
    """A working dir of its own per test: top-level workspace calls are routed by it."""
    return f"{WORKSPACE_ROOT}/{name}-{uuid.uuid4().hex[:8]}"


def api(method: str, path: str, *, base: str = BERTH_URL, **kwargs: Any) -> httpx.Response:
    """A plain HTTP call with the session key, for what the SDK has no method for."""
    headers = {"X-Session-API-Key": BERTH_API_KEY, **kwargs.pop("headers", {})}
    return httpx.request(method, f"{base}{path}", headers=headers, timeout=30, **kwargs)


def server_events(conversation_id: Any, base: str = BERTH_URL) -> list[dict[str, Any]]:
    """Every stored event of a conversation, as the REST API pages them."""
    out: list[dict[str, Any]] = []
    page_id = None
    while True:
        params: dict[str, Any] = {"limit": 100}
        if page_id:
            params["page_id"] = page_id
        res = api("GET", f"/api/conversations/{conversation_id}/events/search", base=base, params=params)
        assert res.status_code == 200, res.text
        body = res.json()
        out.extend(body["items"])
        page_id = body.get("next_page_id")
        if not page_id:
            return out


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition", interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def wait_status(conversation: Any, statuses: set[ConversationExecutionStatus], timeout: float = 30.0) -> ConversationExecutionStatus:
    """Polls the server (not the socket-fed cache) until the conversation's status is one of `statuses`."""

    def current() -> ConversationExecutionStatus | None:
        status = ConversationExecutionStatus(conversation.state.refresh_from_server()["execution_status"])
        return status if status in statuses else None

    return wait_for(current, timeout, f"status in {sorted(s.value for s in statuses)}")


def observations(events: list[Any], tool_name: str | None = None) -> list[ObservationEvent]:
    return [e for e in events if isinstance(e, ObservationEvent) and (tool_name is None or e.tool_name == tool_name)]


def actions(events: list[Any], tool_name: str | None = None) -> list[ActionEvent]:
    return [e for e in events if isinstance(e, ActionEvent) and (tool_name is None or e.tool_name == tool_name)]


def text_of(observation: ObservationEvent) -> str:
    return "".join(getattr(c, "text", "") for c in observation.observation.content)


def messages(events: list[Any], source: str) -> list[str]:
    return [
        "".join(getattr(c, "text", "") for c in e.llm_message.content)
        for e in events
        if isinstance(e, MessageEvent) and e.source == source
    ]


def stored(events: list[Any]) -> list[Any]:
    """Events as the server stores them: without the socket's full-state snapshots."""
    return [e for e in events if not (isinstance(e, ConversationStateUpdateEvent) and e.key == "full_state")]


@pytest.fixture
def llm() -> LLM:
    return make_llm()


@pytest.fixture(scope="session")
def _closing() -> Iterator[list[threading.Thread]]:
    """Closes of conversations still under way; all awaited at the end of the session. (The SDK's
    close() waits up to 5 s for its socket thread, which notices the stop only at its next frame.)"""
    threads: list[threading.Thread] = []
    yield threads
    for thread in threads:
        thread.join(timeout=30)


@pytest.fixture
def open_conversations(_closing: list[threading.Thread]) -> Iterator[list[Any]]:
    """Conversations a test opened; closed (and so deleted, as Conversation(...) does) after it."""
    opened: list[Any] = []
    yield opened
    for conversation in opened:
        thread = threading.Thread(target=conversation.close, daemon=True)
        thread.start()
        _closing.append(thread)


@pytest.fixture
def workspace(request: pytest.FixtureRequest):
    ws = Workspace(host=BERTH_URL, api_key=BERTH_API_KEY, working_dir=unique_working_dir(request.node.name.split("[")[0]))
    yield ws
    ws.reset_client()


@pytest.fixture
def conversation_factory(workspace, llm, open_conversations):
    """Conversation(...) in the test's workspace with the default CLI agent; no console output."""
    from openhands.tools.preset.default import get_default_agent

    def make(**kwargs: Any):
        kwargs.setdefault("agent", get_default_agent(llm, cli_mode=True))
        kwargs.setdefault("workspace", workspace)
        kwargs.setdefault("visualizer", None)
        conversation = Conversation(**kwargs)
        open_conversations.append(conversation)
        return conversation

    return make


class SocketCutter:
    """A TCP proxy in front of Berth that can drop the WebSockets going through it and refuse new
    ones for a while (a network blip for the SDK's socket), leaving plain HTTP alone."""

    def __init__(self, target: str) -> None:
        url = httpx.URL(target)
        self._target = (url.host, url.port or 80)
        self._path = url.path.rstrip("/")
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._sockets: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._blocked = threading.Event()
        self._closed = False
        self.socket_connections = 0
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}{self._path}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            first = client.recv(65536)
        except OSError:
            client.close()
            return
        is_socket = b"\r\nupgrade: websocket" in first.lower()
        if is_socket and self._blocked.is_set():
            client.close()
            return
        upstream = socket.create_connection(self._target)
        upstream.sendall(first)
        if is_socket:
            with self._lock:
                self._sockets.append((client, upstream))
                self.socket_connections += 1
        threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()
        self._pipe(client, upstream)

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        """Drops every WebSocket now and refuses new ones until restore()."""
        self._blocked.set()
        with self._lock:
            pairs, self._sockets = self._sockets, []
        for pair in pairs:
            for s in pair:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def restore(self) -> None:
        self._blocked.clear()

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._listener.close()


@pytest.fixture
def socket_cutter() -> Iterator[SocketCutter]:
    cutter = SocketCutter(BERTH_URL)
    yield cutter
    cutter.close()
