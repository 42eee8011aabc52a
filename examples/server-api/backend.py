"""A Python backend that drives a wsfacility server through its HTTP API, with `requests` only.

    WSFACILITY_URL=http://127.0.0.1:8080 WSFACILITY_API_KEY=... python3 backend.py ann

publishes a notification to user ann, asks who is online, then disconnects ann.
"""

import os
import sys

import requests

BASE = os.environ.get("WSFACILITY_URL", "http://127.0.0.1:8080")
api = requests.Session()
api.headers["Authorization"] = "apikey " + os.environ["WSFACILITY_API_KEY"]


def publish_to_user(user, data, facility="notifications"):
    """Sends `data` (text, or any JSON value) to every connection of `user`; returns the receivers."""
    r = api.post(f"{BASE}/api/publish", json={"facility": facility, "users": [user], "data": data})
    r.raise_for_status()  # 400 names the wrong field: r.json()["field"]
    return r.json()["receivers"]


def who_is_online(facility="notifications"):
    """The users connected to `facility`, on every server process, with their connection counts."""
    r = api.get(f"{BASE}/api/presence", params={"facility": facility})
    r.raise_for_status()
    return {u["user"]: u["connections"] for u in r.json()["users"]}


def disconnect(user):
    """Closes every connection of `user` (close code 1000 unless you pass "code")."""
    api.post(f"{BASE}/api/disconnect", json={"user": user}).raise_for_status()


if __name__ == "__main__":
    user = sys.argv[1] if len(sys.argv) > 1 else "ann"
    print("receivers:", publish_to_user(user, {"type": "notice", "text": "Your report is ready"}))
    print("online:", who_is_online())
    disconnect(user)
    print("disconnected:", user)
