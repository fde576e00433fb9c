// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";

import {Flow} from "../storage/Flow.sol";
import {
    IERC7857DataVerifier,
    OracleType,
    PreimageProofOutput,
    TransferValidityProof,
    TransferValidityProofOutput
} from "./interfaces/IERC7857DataVerifier.sol";

/// @title INFTVerifier: ERC-7857 transfer proofs that are really verified (issue 16).
/// @notice A transfer proof holds, for the calling token contract (`msg.sender`), when:
/// 1. at least `threshold` distinct registered oracles signed the EIP-712 `Ownership` message
///    (old data hash, new data hash, sealed key, receiver key, nonce), signatures sorted by
///    signer so none counts twice;
/// 2. the access proof is a valid EIP-712 `Access` signature over the same new data hash,
///    receiver key and nonce (the token contract checks who signed it);
/// 3. the new data hash is a root submitted to `Flow`;
/// 4. the nonce was never spent by this token contract (it is spent here).
/// 0G's verifier trusts one TEE signer, binds no old data hash and never checks that the new
/// data is stored (system.md §5.2). zgos oracles are trusted signers, not TEEs: `oracleType`
/// must be TEE, the type 0G's tools send; ZKP proofs are refused.
/// @dev Both messages name the token contract, so a proof cannot be spent, or its nonce
/// burnt, by calling the verifier directly.
contract INFTVerifier is IERC7857DataVerifier, EIP712, Ownable {
    bytes32 public constant ACCESS_TYPEHASH =
        keccak256("Access(address nft,bytes32 dataHash,bytes targetPubkey,bytes nonce)");
    bytes32 public constant OWNERSHIP_TYPEHASH = keccak256(
        "Ownership(address nft,bytes32 oldDataHash,bytes32 newDataHash,bytes sealedKey,bytes targetPubkey,bytes nonce)"
    );
    uint256 public constant PUBKEY_BYTES = 64;
    uint256 public constant MAX_NONCE_BYTES = 64;
    uint256 public constant MAX_SEALED_KEY_BYTES = 256;
    uint256 public constant MAX_ORACLES = 16;
    uint256 public constant MAX_PROOFS = 16;

    Flow public immutable flow;
    address[] private oracleList;
    mapping(address => bool) public isOracle;
    uint256 public threshold;
    mapping(address nft => mapping(bytes32 nonceHash => bool)) public nonceSpent;

    event OraclesSet(address[] oracles, uint256 threshold);

    error BadOracleSet(uint256 count, uint256 threshold);
    error MalformedProof(uint256 index);
    error UnsupportedOracleType(uint256 index);
    error AccessProofMismatch(uint256 index);
    error InvalidSignature(uint256 index);
    error UnknownOracle(address signer);
    error OracleSignaturesNotSorted();
    error NotEnoughOracleSignatures(uint256 signatures, uint256 threshold);
    error DataNotOnFlow(bytes32 dataHash);
    error NonceAlreadyUsed(bytes32 nonceHash);

    /// @notice No transfer verifies until the deployer names the oracles with `setOracles`.
    constructor(Flow flow_) EIP712("zgos INFT verifier", "1") Ownable(msg.sender) {
        flow = flow_;
    }

    /// @notice Replace the oracle set (the deployer's decision, like 0G's attestation config).
    function setOracles(address[] calldata oracles_, uint256 threshold_) external onlyOwner {
        _setOracles(oracles_, threshold_);
    }

    function oracles() external view returns (address[] memory) {
        return oracleList;
    }

    function verifyPreimage(bytes[] calldata proofs) external view returns (PreimageProofOutput[] memory out) {
        if (proofs.length > MAX_PROOFS) revert MalformedProof(MAX_PROOFS);
        out = new PreimageProofOutput[](proofs.length);
        for (uint256 i = 0; i < proofs.length; i++) {
            if (proofs[i].length != 32) revert MalformedProof(i);
            bytes32 dataHash = bytes32(proofs[i]);
            out[i] = PreimageProofOutput(dataHash, isOnFlow(dataHash));
        }
    }

    function verifyTransferValidity(TransferValidityProof[] calldata proofs)
        external
        returns (TransferValidityProofOutput[] memory out)
    {
        if (proofs.length > MAX_PROOFS) revert MalformedProof(MAX_PROOFS);
        out = new TransferValidityProofOutput[](proofs.length);
        for (uint256 i = 0; i < proofs.length; i++) {
            out[i] = _verify(proofs[i], i);
        }
    }

    /// @notice Whether `dataHash` is the data root of a file submitted to `Flow`.
    function isOnFlow(bytes32 dataHash) public view returns (bool) {
        (address submitter,) = flow.fileOf(dataHash);
        return submitter != address(0);
    }

    function accessDigest(address nft, bytes32 dataHash, bytes calldata targetPubkey, bytes calldata nonce)
        public
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(
            keccak256(abi.encode(ACCESS_TYPEHASH, nft, dataHash, keccak256(targetPubkey), keccak256(nonce)))
        );
    }

    function ownershipDigest(
        address nft,
        bytes32 oldDataHash,
        bytes32 newDataHash,
        bytes calldata sealedKey,
        bytes calldata targetPubkey,
        bytes calldata nonce
    ) public view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    OWNERSHIP_TYPEHASH,
                    nft,
                    oldDataHash,
                    newDataHash,
                    keccak256(sealedKey),
                    keccak256(targetPubkey),
                    keccak256(nonce)
                )
            )
        );
    }

    function _verify(TransferValidityProof calldata p, uint256 i)
        internal
        returns (TransferValidityProofOutput memory out)
    {
        _checkShape(p, i);
        (bytes32 oldDataHash, bytes[] memory signatures) = abi.decode(p.ownershipProof.proof, (bytes32, bytes[]));
        bytes32 digest = ownershipDigest(
            msg.sender,
            oldDataHash,
            p.ownershipProof.dataHash,
            p.ownershipProof.sealedKey,
            p.ownershipProof.targetPubkey,
            p.ownershipProof.nonce
        );
        _checkOracleSignatures(digest, signatures);
        address accessor = _recover(
            accessDigest(msg.sender, p.accessProof.dataHash, p.accessProof.targetPubkey, p.accessProof.nonce),
            p.accessProof.proof,
            i
        );
        if (!isOnFlow(p.ownershipProof.dataHash)) revert DataNotOnFlow(p.ownershipProof.dataHash);
        bytes32 nonceHash = keccak256(p.ownershipProof.nonce);
        if (nonceSpent[msg.sender][nonceHash]) revert NonceAlreadyUsed(nonceHash);
        nonceSpent[msg.sender][nonceHash] = true;
        out = TransferValidityProofOutput({
            dataHash: p.ownershipProof.dataHash,
            sealedKey: p.ownershipProof.sealedKey,
            targetPubkey: p.ownershipProof.targetPubkey,
            wantedKey: "",
            accessAssistant: accessor,
            accessProofNonce: p.accessProof.nonce,
            ownershipProofNonce: p.ownershipProof.nonce,
            oldDataHash: oldDataHash
        });
    }

    /// @dev Sizes, the oracle type, and that both proofs speak of the same data, key and nonce.
    function _checkShape(TransferValidityProof calldata p, uint256 i) internal pure {
        if (p.ownershipProof.oracleType != OracleType.TEE) revert UnsupportedOracleType(i);
        if (
            p.ownershipProof.targetPubkey.length != PUBKEY_BYTES || p.ownershipProof.nonce.length == 0
                || p.ownershipProof.nonce.length > MAX_NONCE_BYTES
                || p.ownershipProof.sealedKey.length > MAX_SEALED_KEY_BYTES || p.accessProof.proof.length != 65
        ) revert MalformedProof(i);
        if (
            p.accessProof.dataHash != p.ownershipProof.dataHash
                || keccak256(p.accessProof.targetPubkey) != keccak256(p.ownershipProof.targetPubkey)
                || keccak256(p.accessProof.nonce) != keccak256(p.ownershipProof.nonce)
        ) revert AccessProofMismatch(i);
    }

    function _checkOracleSignatures(bytes32 digest, bytes[] memory signatures) internal view {
        if (signatures.length > MAX_ORACLES) revert OracleSignaturesNotSorted();
        address previous = address(0);
        for (uint256 j = 0; j < signatures.length; j++) {
            address signer = _recover(digest, signatures[j], j);
            if (!isOracle[signer]) revert UnknownOracle(signer);
            if (signer <= previous) revert OracleSignaturesNotSorted();
            previous = signer;
        }
        if (threshold == 0 || signatures.length < threshold) {
            revert NotEnoughOracleSignatures(signatures.length, threshold);
        }
    }

    function _recover(bytes32 digest, bytes memory signature, uint256 i) internal pure returns (address) {
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, signature);
        if (err != ECDSA.RecoverError.NoError) revert InvalidSignature(i);
        return signer;
    }

    function _setOracles(address[] calldata list, uint256 threshold_) internal {
        if (list.length == 0 || list.length > MAX_ORACLES || threshold_ == 0 || threshold_ > list.length) {
            revert BadOracleSet(list.length, threshold_);
        }
        for (uint256 j = 0; j < oracleList.length; j++) {
            isOracle[oracleList[j]] = false;
        }
        for (uint256 j = 0; j < list.length; j++) {
            if (list[j] == address(0) || isOracle[list[j]]) revert BadOracleSet(list.length, threshold_);
            isOracle[list[j]] = true;
        }
        oracleList = list;
        threshold = threshold_;
        emit OraclesSet(list, threshold_);
    }
}
