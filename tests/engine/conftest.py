"""Engine tests run in the Rasa environment from the project root."""

import asyncio
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")


@pytest.fixture(scope="module")
def agent():
    """The trained model, loaded as Rasa loads it (rasa.core.agent)."""
    from rasa.core.agent import load_agent

    model = ROOT / "models" / "assistant.tar.gz"
    if not model.exists():
        pytest.fail("no trained model: run make model")
    return asyncio.run(load_agent(model_path=str(model)))
