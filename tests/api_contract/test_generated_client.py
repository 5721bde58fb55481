"""A client generated from the server's OpenAPI document (openapi-python-client, at test
time, into a temporary directory) creates two local endpoints, submits a copy between them
and reads the job back until it succeeded. Run by scripts/test-api-contract.sh, which
starts the server and sets FILE_ORBIT_CONTRACT_URL, _KEY and _DIR."""

import importlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

URL = os.environ["FILE_ORBIT_CONTRACT_URL"]
KEY = os.environ["FILE_ORBIT_CONTRACT_KEY"]
WORK = Path(os.environ["FILE_ORBIT_CONTRACT_DIR"])


def generated_client():
    """The package openapi-python-client generates from the live document."""
    with urllib.request.urlopen(f"{URL}/api/v1/openapi.json") as answer:
        document = json.load(answer)
    spec = WORK / "openapi.json"
    spec.write_text(json.dumps(document))
    out = WORK / "generated"
    generator = Path(sys.executable).with_name("openapi-python-client")
    run = subprocess.run(
        [str(generator), "generate", "--path", str(spec), "--meta", "none",
         "--output-path", str(out / "file_orbit_client"), "--overwrite"],
        capture_output=True, text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    # Every operation of the document made it into the client.
    assert "will not be generated" not in run.stdout, run.stdout
    sys.path.insert(0, str(out))
    return importlib.import_module("file_orbit_client")


def test_a_generated_client_submits_a_job_and_reads_it_back():
    client_pkg = generated_client()
    from file_orbit_client.api.endpoints import put_endpoint
    from file_orbit_client.api.jobs import get_job, submit_job
    # The body is one of the endpoint kinds; the first is a local endpoint.
    from file_orbit_client.models import EndpointPutType0 as LocalEndpointPut
    from file_orbit_client.models import JobRequest

    client = client_pkg.AuthenticatedClient(base_url=URL, token=KEY)
    inbox, outbox = WORK / "inbox", WORK / "outbox"
    inbox.mkdir()
    (inbox / "report.csv").write_text("id,total\n1,42\n")
    for name, root in [("contract-in", inbox), ("contract-out", outbox)]:
        body = LocalEndpointPut.from_dict({"type": "local", "root": str(root)})
        answer = put_endpoint.sync_detailed(name=name, client=client, body=body)
        assert answer.status_code == 201, answer.content

    request = JobRequest.from_dict({
        "spec": {
            "source": "contract-in", "source_path": "report.csv",
            "destination": "contract-out", "destination_path": "copied.csv",
            "scope": "file",
        },
    })
    answer = submit_job.sync_detailed(client=client, body=request)
    assert answer.status_code == 201, answer.content
    job_id = answer.parsed.id

    deadline = time.monotonic() + 60
    while True:
        job = get_job.sync(id=job_id, client=client)
        assert job is not None
        state = job.state.value
        if state in ("succeeded", "dead", "cancelled"):
            break
        assert time.monotonic() < deadline, f"job {job_id} still {state}"
        time.sleep(0.2)
    assert state == "succeeded", job.last_error
    assert job.spec.destination == "contract-out"
    assert job.files == 1
    assert (outbox / "copied.csv").read_text() == "id,total\n1,42\n"
