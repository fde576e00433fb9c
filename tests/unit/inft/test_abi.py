"""AgentNFT speaks 0G's ERC-7857 ABI: every function, event and error signature of 0G's
``IERC7857``, ``IERC7857Cloneable`` and ``IERC7857Metadata`` (0gfoundation/0g-agent-nft,
contracts/interfaces/) is in the compiled artifact, so their selectors match."""

from __future__ import annotations

from typing import Any

from zgos.chain.artifacts import load_artifact

PROOF = "((bytes32,bytes,bytes,bytes),(uint8,bytes32,bytes,bytes,bytes,bytes))[]"
DATA = "(string,bytes32)[]"
OG_FUNCTIONS = {
    f"iTransferFrom(address,address,uint256,{PROOF})", f"iCloneFrom(address,address,uint256,{PROOF})",
    "authorizeUsage(uint256,address)", "revokeAuthorization(uint256,address)", "delegateAccess(address)",
    "authorizedUsersOf(uint256)", "getDelegateAccess(address)", "verifier()", "intelligentDatasOf(uint256)",
    f"mint({DATA},address,bytes[])", "mint(address)", f"update(uint256,{DATA},bytes[])",
    "batchAuthorizeUsage(uint256,address[])", "clearAuthorizedUsers(uint256)",
    "ownerOf(uint256)", "transferFrom(address,address,uint256)", "name()", "symbol()", "tokenURI(uint256)",
}
OG_EVENTS = {
    f"Updated(uint256,{DATA},{DATA})", "Authorization(address,address,uint256)",
    "AuthorizationRevoked(address,address,uint256)", "PublishedSealedKey(address,uint256,bytes[])",
    "DelegateAccess(address,address)", "Cloned(uint256,uint256,address,address)",
}
OG_ERRORS = {
    "ERC7857InvalidAuthorizedUser(address)", "ERC7857TooManyAuthorizedUsers()", "ERC7857AlreadyAuthorized()",
    "ERC7857InvalidAssistant(address)", "ERC7857EmptyProof()", "ERC7857ProofCountMismatch()",
    "ERC7857DataHashMismatch()", "ERC7857AccessAssistantMismatch()", "ERC7857WantedReceiverMismatch()",
    "ERC7857EncryptedPubKeyMismatch()", "ERC7857NotAuthorized()",
}


def canonical(param: dict[str, Any]) -> str:
    kind = str(param["type"])
    if kind.startswith("tuple"):
        return "(" + ",".join(canonical(c) for c in param["components"]) + ")" + kind[len("tuple"):]
    return kind


def signatures(kind: str) -> set[str]:
    return {f"{item['name']}({','.join(canonical(p) for p in item['inputs'])})"
            for item in load_artifact("AgentNFT").abi if item["type"] == kind}


def test_agent_nft_has_every_function_of_0gs_interfaces() -> None:
    assert OG_FUNCTIONS - signatures("function") == set()


def test_agent_nft_has_every_event_of_0gs_interfaces() -> None:
    assert OG_EVENTS - signatures("event") == set()


def test_agent_nft_has_every_error_of_0gs_interfaces() -> None:
    assert OG_ERRORS - signatures("error") == set()


def test_the_verifier_takes_0gs_transfer_proof_struct() -> None:
    verifier = {f"{i['name']}({','.join(canonical(p) for p in i['inputs'])})"
                for i in load_artifact("INFTVerifier").abi if i["type"] == "function"}
    assert {f"verifyTransferValidity({PROOF})", "verifyPreimage(bytes[])"} <= verifier
