// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {PoraLib} from "./PoraLib.sol";

/// @title PoraVerifier: stateless checks of a PoRA answer, callable with eth_call.
/// @notice Miners pre-check an answer here before spending gas on PoraMine.submit, and tests
/// cross-check the Solidity rules against the Python core.
contract PoraVerifier {
    struct Computed {
        bytes32 recallSeed;
        uint256 recallPosition;
        bytes32 poraHash;
    }

    /// @notice Recompute recall position and PoRA hash for a sealed piece found by a miner.
    function compute(
        bytes32 minerId,
        bytes32 nonce,
        bytes32 subtaskDigest,
        PoraLib.RecallRange memory range,
        uint256 sealOffset,
        bytes32[128] memory sealedData
    ) external view returns (Computed memory result) {
        bytes memory seed = PoraLib.padSeed(minerId, nonce, subtaskDigest, range);
        (bytes32[128] memory pad, bytes32 recallSeed) = PoraLib.scratchpadBlock(seed, sealOffset);
        result.recallSeed = recallSeed;
        result.recallPosition = PoraLib.recallPosition(range, recallSeed) + sealOffset * PoraLib.SECTORS_PER_SEAL;
        result.poraHash = PoraLib.poraHash(sealOffset, seed, pad, sealedData);
    }

    function blake2b512(bytes memory message) external view returns (bytes memory) {
        return PoraLib.blake2b512(message);
    }

    function unseal(bytes32[128] memory sealedData, bytes32 minerId, bytes32 contextDigest, uint256 startSector)
        external
        pure
        returns (bytes32[128] memory)
    {
        return PoraLib.unseal(sealedData, minerId, contextDigest, startSector);
    }

    function recoverMerkleRoot(bytes32[128] memory data, uint256 recallPos, bytes32[] memory proof)
        external
        pure
        returns (bytes32)
    {
        return PoraLib.recoverMerkleRoot(data, recallPos, proof);
    }

    function checkRange(PoraLib.RecallRange memory range, uint256 maxEnd) external pure returns (bool) {
        PoraLib.check(range, maxEnd);
        return true;
    }

    function targetScaleX64(PoraLib.RecallRange memory range, uint256 flowLength) external pure returns (uint256) {
        return PoraLib.targetScaleX64(range, flowLength);
    }
}
