"""The fraud reviewer: takes a review now, answers the waiting workflow later.

The order workflow's ``FraudReview`` state is an HTTP task with
``.waitForTaskToken``: Dirigent calls ``POST /reviews`` with the task token in
``X-Dirigent-Task-Token`` and the execution waits. This service records the
review (202) and a background loop decides it a moment later, answering with
the Dirigent SDK: ``SendTaskSuccess`` to approve, ``SendTaskFailure`` with
``Review.Rejected`` to reject. It rejects cards ending in ``6666`` (a
"stolen card" list of one) and approves the rest.

Pending reviews live in SQLite, so a reviewer that restarts still answers
them. Needs the Dirigent package (run it with the venv's python3); the API is
``DIRIGENT_SERVER`` (default http://127.0.0.1:8080) and the credentials are
read from ``DIRIGENT_DATA_DIR`` (the app's ``.dirigent``).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from contextlib import closing

from shoplib import Json, Shop, rows

from dirigent.sdk import StepFunctions, StepFunctionsError

REJECTED_SUFFIX = "6666"
#: tokens the engine no longer waits on (the attempt timed out, the execution ended)
GONE = {"TaskTimedOut", "TaskDoesNotExist", "InvalidToken", "ExecutionDoesNotExist"}

SCHEMA = """
CREATE TABLE IF NOT EXISTS reviews (
    id INTEGER PRIMARY KEY, order_id TEXT, token TEXT, total_cents INTEGER, card_last4 TEXT,
    state TEXT, decision TEXT, received_at REAL, decide_after REAL, answered_at REAL)
"""


def seed(db: sqlite3.Connection) -> None:
    pass


shop = Shop("reviewer", SCHEMA, seed)
DELAY = float(os.environ.get("SHOP_REVIEW_DELAY", "0.5"))


@shop.post("/reviews")
def take_review(db: sqlite3.Connection, request: Json) -> tuple[int, Json]:
    token = request["_headers"].get("x-dirigent-task-token")
    if not token:
        return 400, {"error": "Review.NoToken", "message": "expected X-Dirigent-Task-Token"}
    now = time.time()
    cursor = db.execute(
        "INSERT INTO reviews (order_id, token, total_cents, card_last4, state, received_at,"
        " decide_after) VALUES (?, ?, ?, ?, 'pending', ?, ?)",
        (request["orderId"], token, request.get("totalCents"), str(request.get("card"))[-4:],
         now, now + DELAY),
    )  # fmt: skip
    return 202, {"reviewId": cursor.lastrowid, "state": "pending"}


def answer_reviews(client: StepFunctions) -> None:
    """Forever: decide each due review and tell the waiting execution."""
    while True:
        time.sleep(0.1)
        if not shop.ready or shop.draining:
            continue
        with closing(shop.connect()) as db:
            due = rows(
                db,
                "SELECT * FROM reviews WHERE state = 'pending' AND decide_after <= ?",
                time.time(),
            )
            for review in due:
                rejected = str(review["card_last4"]).endswith(REJECTED_SUFFIX)
                try:
                    if rejected:
                        client.send_task_failure(
                            review["token"], "Review.Rejected", "card on the stolen-card list"
                        )
                    else:
                        client.send_task_success(review["token"], {"approved": True})
                    state = "rejected" if rejected else "approved"
                except StepFunctionsError as exc:
                    if exc.code not in GONE:
                        continue  # the API is unreachable for now: try again next turn
                    state = "stale"
                db.execute(
                    "UPDATE reviews SET state = ?, answered_at = ? WHERE id = ?",
                    (state, time.time(), review["id"]),
                )


@shop.get("/records")
def records(db: sqlite3.Connection) -> Json:
    return {
        "reviews": rows(db, "SELECT * FROM reviews"),
        "requests": rows(db, "SELECT * FROM requests"),
        "boots": rows(db, "SELECT * FROM boots"),
    }


if __name__ == "__main__":
    sdk = StepFunctions.from_environment(data_dir=os.environ.get("DIRIGENT_DATA_DIR", ".dirigent"))
    threading.Thread(target=answer_reviews, args=(sdk,), daemon=True).start()
    shop.run()
