#!/usr/bin/env python3
"""Two tenants, one collection, isolated by tenantgate — seen from pymongo.

    python examples/pymongo_isolation.py 127.0.0.1:27018 [DATABASE]

Connects to a running tenantgate proxy (first argument: host:port) as the two demo principals
of the example configuration (svc-bank1 / bank1-secret and svc-bank2 / bank2-secret), in
DATABASE (default "payments", which must be among [policy] databases). The applications use
plain pymongo and never mention a tenant: each bank writes payments, reads them back and sees
only its own, and a query that names the other bank is refused with Unauthorized (13).

Exits 0 and prints "isolation holds" when everything is as it should be; exits 1 naming each
isolation failure otherwise, and 2 when the proxy cannot be used at all.
"""

import sys
import uuid

from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError

UNAUTHORIZED = 13


def connect(address, user, password):
    return MongoClient(
        f"mongodb://{user}:{password}@{address}/?authSource=admin",
        serverSelectionTimeoutMS=5000,
        connectTimeoutMS=5000,
    )


def expect_rejected(failures, what, rule, action):
    """Runs action(), which the proxy must refuse with Unauthorized naming rule."""
    try:
        result = action()
    except OperationFailure as e:
        if e.code != UNAUTHORIZED or f"'{rule}'" not in str(e):
            failures.append(f"{what}: refused, but not by rule {rule}: code {e.code}: {e}")
        else:
            print(f"  refused as expected: {what}: {e.details.get('errmsg')}")
        return
    failures.append(f"{what}: was NOT refused, got {result!r}")


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    address = argv[1]
    database = argv[2] if len(argv) > 2 else "payments"
    run = uuid.uuid4().hex[:8]
    failures = []

    bank1 = connect(address, "svc-bank1", "bank1-secret")
    bank2 = connect(address, "svc-bank2", "bank2-secret")
    try:
        pay1 = bank1[database]["payments"]
        pay2 = bank2[database]["payments"]

        # Each bank writes without naming a tenant: the proxy stamps it.
        pay1.insert_many(
            [{"run": run, "owner": "bank1", "amount": a} for a in (100, 200, 300)]
        )
        pay2.insert_many([{"run": run, "owner": "bank2", "amount": a} for a in (1000, 2000)])
        print(f"run {run}: bank1 wrote 3 payments, bank2 wrote 2")

        for name, coll, tenant, expected in (("bank1", pay1, "bank1", 3), ("bank2", pay2, "bank2", 2)):
            docs = list(coll.find({"run": run}))
            foreign = [d for d in docs if d.get("tenantId") != tenant or d.get("owner") != tenant]
            if foreign:
                failures.append(f"{name} read {len(foreign)} documents of another tenant: {foreign!r}")
            if len(docs) != expected:
                failures.append(f"{name} read {len(docs)} documents, expected {expected}")
            count = coll.count_documents({"run": run})
            if count != expected:
                failures.append(f"{name} counted {count} documents, expected {expected}")
            total = sum(d["amount"] for d in coll.aggregate([{"$match": {"run": run}}]))
            print(f"  {name} sees {len(docs)} payments, total {total}")

        # Naming the other tenant is refused, not answered.
        expect_rejected(
            failures,
            "bank1 reading bank2's payments",
            "tenant_override",
            lambda: list(pay1.find({"tenantId": "bank2"})),
        )
        expect_rejected(
            failures,
            "bank1 moving its payments to bank2",
            "tenant_field_write",
            lambda: pay1.update_many({"run": run}, {"$set": {"tenantId": "bank2"}}).raw_result,
        )
        # The refused update changed nothing.
        moved = pay2.count_documents({"run": run, "owner": "bank1"})
        if moved:
            failures.append(f"bank2 now sees {moved} of bank1's payments")
    except PyMongoError as e:
        print(f"cannot use the proxy at {address}: {e}", file=sys.stderr)
        return 2
    finally:
        bank1.close()
        bank2.close()

    if failures:
        for f in failures:
            print(f"ISOLATION FAILURE: {f}", file=sys.stderr)
        return 1
    print("isolation holds")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
