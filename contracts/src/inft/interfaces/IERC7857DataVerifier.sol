// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @notice Who vouches for a re-encryption (0G's `OracleType`); zgos runs signing oracles only.
enum OracleType {
    TEE,
    ZKP
}

/// @notice The receiver's statement that the new ciphertext is retrievable under `dataHash`,
/// signed by the receiver or its delegated access assistant.
struct AccessProof {
    bytes32 dataHash; // the new ciphertext's storage root
    bytes targetPubkey; // the receiver's 64-byte secp256k1 key (x || y)
    bytes nonce;
    bytes proof; // the 65-byte signature
}

/// @notice The oracles' statement that the new data re-encrypts the old under a key sealed to
/// `targetPubkey`. In zgos `proof` is `abi.encode(bytes32 oldDataHash, bytes[] signatures)`.
struct OwnershipProof {
    OracleType oracleType;
    bytes32 dataHash; // the new ciphertext's storage root
    bytes sealedKey; // the new data key, ECIES-sealed to targetPubkey
    bytes targetPubkey;
    bytes nonce;
    bytes proof;
}

struct TransferValidityProof {
    AccessProof accessProof;
    OwnershipProof ownershipProof;
}

struct PreimageProofOutput {
    bytes32 dataHash;
    bool isValid;
}

/// @notice What a verified transfer proof establishes. The fields are 0G's, with
/// `oldDataHash` added: 0G's oracle signature does not bind the data it re-encrypted.
struct TransferValidityProofOutput {
    bytes32 dataHash;
    bytes sealedKey;
    bytes targetPubkey;
    bytes wantedKey;
    address accessAssistant;
    bytes accessProofNonce;
    bytes ownershipProofNonce;
    bytes32 oldDataHash;
}

interface IERC7857DataVerifier {
    /// @notice For each proof (a 32-byte data hash), whether that data is in storage.
    function verifyPreimage(bytes[] calldata proofs) external returns (PreimageProofOutput[] memory);

    /// @notice Check every proof and spend its nonce, for the calling token contract; reverts
    /// on the first proof that does not hold.
    function verifyTransferValidity(TransferValidityProof[] calldata proofs)
        external
        returns (TransferValidityProofOutput[] memory);
}
