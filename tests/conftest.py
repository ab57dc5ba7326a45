import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_morpher():
    """One ``tiny`` Morpher on CPU for the whole session (loading it takes a few seconds)."""
    import torch

    torch.set_num_threads(1)
    from morph import Morpher

    return Morpher("tiny", device="cpu")


@pytest.fixture
def count_unet(morpher, monkeypatch):
    """The batch size of each UNet call of the test module's ``morpher`` fixture, in order (the real UNet
    still runs)."""
    calls = []
    forward = morpher.pipe.unet.forward

    def counting(sample, *args, **kwargs):
        calls.append(sample.shape[0])
        return forward(sample, *args, **kwargs)

    monkeypatch.setattr(morpher.pipe.unet, "forward", counting)
    return calls


@pytest.fixture(scope="session")
def make_lora():
    """``make_lora(model, path, seed=0)``: write a small LoRA for the built-in ``model`` (tiny or tiny-sdxl) to
    ``path`` (a .safetensors file) and return the path as a string: rank 4 on every attention projection of
    the UNet, random (not zero) weights, saved with the pipeline's own ``save_lora_weights``."""
    def make(model: str, path, seed: int = 0) -> str:
        import torch
        from diffusers.utils import convert_state_dict_to_diffusers
        from peft import LoraConfig
        from peft.utils import get_peft_model_state_dict

        from morph import builtin

        pipe = builtin.build_builtin(tiny=True, xl=model == "tiny-sdxl")  # a fresh copy: the cached one stays clean
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            pipe.unet.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False,
                                             target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
        layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(pipe.unet))
        type(pipe).save_lora_weights(str(path.parent), unet_lora_layers=layers, weight_name=path.name)
        return str(path)

    return make


def _temp_postgres():
    """A throwaway PostgreSQL server (``initdb`` + ``pg_ctl`` in a temp folder), removed at the end. Skipped,
    with the reason, only where the server binaries are missing, and never in CI (``make test`` installs
    them when it runs as root)."""
    from testkit.postgres import PostgresUnavailable, TempPostgres

    server = TempPostgres()
    try:
        server.start()
    except PostgresUnavailable as err:
        server.stop()
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no PostgreSQL server here: {err}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server for the whole session; ``postgres.create_database()`` gives each test an empty
    database. Tests that stop the server use :func:`own_postgres`."""
    yield from _temp_postgres()


@pytest.fixture(scope="module")
def own_postgres():
    """A PostgreSQL server of one test module alone, for tests that stop and start it (``stop_server()``,
    ``start_server()``): the session's server stays up for everyone else."""
    yield from _temp_postgres()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path) -> str:
    """The URL of an empty database: a SQLite file, then a fresh database of the session's PostgreSQL server."""
    if request.param == "sqlite":
        return str(tmp_path / "m.sqlite3")
    return request.getfixturevalue("postgres").create_database()
