// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {FlowMerkle} from "../storage/FlowMerkle.sol";

/// @title PoraLib: the on-chain half of proof of random access (storage.md §2.4, §3.2–3.4).
/// @notice Mirrors zgos/storage/mine/{sealing,pora}.py word for word; tests cross-check them.
library PoraLib {
    uint256 internal constant SECTORS_PER_SEAL = 16;
    uint256 internal constant SECTORS_PER_LOAD = 1024;
    uint256 internal constant SECTORS_PER_PRICING = 1 << 25;
    uint256 internal constant MAX_SECTORS_PER_SHARD_UNIT = 1 << 35;
    uint256 internal constant WORDS_PER_SEAL = 128;
    uint256 internal constant SEALS_PER_SCRATCHPAD = 4;
    uint256 internal constant SCRATCHPAD_ROUNDS = 256;
    uint256 internal constant ROUNDS_PER_SEAL_PAD = 64; // 64 rounds x 64 B = one 4 KiB pad block
    uint256 internal constant SEAL_TREE_HEIGHT = 4; // 16 sectors per seal
    address internal constant BLAKE2F = address(0x09); // EIP-152

    struct RecallRange {
        uint256 startPosition;
        uint256 mineLength;
        uint64 shardId;
        uint64 shardMask;
    }

    error InvalidRecallRange(string reason);
    error Blake2FailedCall();

    function digest(RecallRange memory r) internal pure returns (bytes32) {
        return keccak256(abi.encode(r.startPosition, r.mineLength, uint256(r.shardId), uint256(r.shardMask)));
    }

    function numShards(RecallRange memory r) internal pure returns (uint256) {
        uint256 zeroBits = 0;
        for (uint256 i = 0; i < 64; i++) {
            if ((r.shardMask >> i) & 1 == 0) zeroBits++;
        }
        return 1 << zeroBits;
    }

    /// @notice The rules a recall range must satisfy (pora.py RecallRange.check).
    function check(RecallRange memory r, uint256 maxEnd) internal pure {
        uint256 cap = MAX_SECTORS_PER_SHARD_UNIT * numShards(r);
        if (r.startPosition % SECTORS_PER_PRICING != 0) revert InvalidRecallRange("start not 8 GiB aligned");
        if (r.startPosition + r.mineLength > maxEnd) revert InvalidRecallRange("range ends beyond the flow");
        if (r.mineLength > cap) revert InvalidRecallRange("range too long");
        if (r.mineLength < (maxEnd < cap ? maxEnd : cap)) revert InvalidRecallRange("range shorter than allowed");
        if (r.shardId & r.shardMask != 0) revert InvalidRecallRange("shard id overlaps mask");
    }

    function targetScaleX64(RecallRange memory r, uint256 flowLength) internal pure returns (uint256) {
        uint256 shardLength = flowLength / numShards(r);
        uint256 denominator = shardLength < MAX_SECTORS_PER_SHARD_UNIT ? shardLength : MAX_SECTORS_PER_SHARD_UNIT;
        if (denominator == 0) revert InvalidRecallRange("flow shorter than shard count");
        uint256 numerator = flowLength < MAX_SECTORS_PER_SHARD_UNIT ? flowLength : MAX_SECTORS_PER_SHARD_UNIT;
        return (numerator << 64) / denominator;
    }

    function recallPosition(RecallRange memory r, bytes32 recallSeed) internal pure returns (uint256) {
        uint256 loads = r.mineLength / SECTORS_PER_LOAD;
        if (loads == 0) revert InvalidRecallRange("range holds no full load");
        uint256 offset = ((uint256(recallSeed) % loads) & uint256(r.shardMask)) | uint256(r.shardId);
        return r.startPosition + offset * SECTORS_PER_LOAD;
    }

    // --- BLAKE2b-512 over the EIP-152 compression precompile -----------------------------------

    // rounds (12, big-endian u32) then the initial state: the IV, little-endian, with the
    // parameter block (64-byte digest, fanout 1, depth 1) folded into the first word.
    bytes internal constant BLAKE2B_INIT =
        hex"0000000c48c9bdf267e6096a3ba7ca8485ae67bb2bf894fe72f36e3cf1361d5f3af54fa5d182e6ad7f520e511f6c3e2b8c68059b6bbd41fbabd9831f79217e1319cde05b";
    uint256 private constant BLAKE2_INPUT_BYTES = 213; // rounds 4, h 64, m 128, t 16, f 1

    /// @notice Unkeyed BLAKE2b with a 64-byte digest of `message` (length > 0). One reusable
    /// 213-byte precompile input; the precompile writes each new state over the old one.
    function blake2b512(bytes memory message) internal view returns (bytes memory h) {
        bytes memory input = new bytes(BLAKE2_INPUT_BYTES);
        bytes memory init = BLAKE2B_INIT;
        uint256 length = message.length;
        uint256 blocks = (length + 127) / 128;
        bool ok = true;
        assembly ("memory-safe") {
            let base := add(input, 32)
            mstore(base, mload(add(init, 32)))
            mstore(add(base, 32), mload(add(init, 64)))
            mstore(add(base, 64), mload(add(init, 96))) // bytes 68.. are overwritten below
            let dst := add(base, 68)
            for { let b := 0 } lt(b, blocks) { b := add(b, 1) } {
                let start := mul(b, 128)
                let src := add(add(message, 32), start)
                let rem := sub(length, start)
                for { let w := 0 } lt(w, 4) { w := add(w, 1) } {
                    let off := mul(w, 32)
                    let word := mload(add(src, off))
                    switch lt(off, rem)
                    case 0 { word := 0 }
                    default {
                        let k := sub(rem, off)
                        if lt(k, 32) { word := and(word, not(sub(shl(mul(8, sub(32, k)), 1), 1))) }
                    }
                    mstore(add(dst, off), word)
                }
                let end := add(start, 128)
                if gt(end, length) { end := length }
                for { let i := 0 } lt(i, 8) { i := add(i, 1) } {
                    mstore8(add(base, add(196, i)), and(shr(mul(8, i), end), 0xff))
                }
                mstore8(add(base, 212), eq(add(b, 1), blocks))
                ok := and(ok, staticcall(gas(), 0x09, base, 213, add(base, 4), 64))
            }
        }
        if (!ok) revert Blake2FailedCall();
        h = new bytes(64);
        assembly ("memory-safe") {
            mstore(add(h, 32), mload(add(input, 36)))
            mstore(add(h, 64), mload(add(input, 68)))
        }
    }

    // --- scratchpad, mixing and the PoRA hash ---------------------------------------------------

    function padSeed(bytes32 minerId, bytes32 nonce, bytes32 subtaskDigest, RecallRange memory r)
        internal
        view
        returns (bytes memory)
    {
        return blake2b512(abi.encodePacked(minerId, nonce, subtaskDigest, digest(r)));
    }

    /// @notice Run the scratchpad, keep the 4 KiB pad block `sealOffset % 4`, return it with the
    /// recall seed (keccak of the final 64-byte state).
    function scratchpadBlock(bytes memory seed, uint256 sealOffset)
        internal
        pure
        returns (bytes32[128] memory pad, bytes32 recallSeed)
    {
        bytes32 first;
        bytes32 second;
        assembly {
            first := mload(add(seed, 32))
            second := mload(add(seed, 64))
        }
        uint256 wanted = sealOffset % SEALS_PER_SCRATCHPAD;
        for (uint256 round = 0; round < SCRATCHPAD_ROUNDS; round++) {
            assembly ("memory-safe") {
                mstore(0x00, first)
                mstore(0x20, second)
                first := keccak256(0x00, 0x40)
                mstore(0x00, first)
                second := keccak256(0x00, 0x40)
            }
            if (round / ROUNDS_PER_SEAL_PAD == wanted) {
                uint256 at = (round % ROUNDS_PER_SEAL_PAD) * 2;
                pad[at] = first;
                pad[at + 1] = second;
            }
        }
        recallSeed = keccak256(abi.encodePacked(first, second));
    }

    /// @notice The PoRA hash of one sealed piece: blake2b(u256(i) || padSeed || 0^32 || sealed ^ pad)[:32].
    function poraHash(uint256 sealOffset, bytes memory seed, bytes32[128] memory pad, bytes32[128] memory sealedData)
        internal
        view
        returns (bytes32 result)
    {
        bytes32[128] memory mixed;
        for (uint256 w = 0; w < WORDS_PER_SEAL; w++) {
            mixed[w] = sealedData[w] ^ pad[w];
        }
        bytes memory h = blake2b512(abi.encodePacked(sealOffset, seed, bytes32(0), mixed));
        assembly {
            result := mload(add(h, 32))
        }
    }

    // --- unsealing and the seal's Merkle path to the flow root ------------------------------------

    function unseal(bytes32[128] memory sealedData, bytes32 minerId, bytes32 contextDigest, uint256 startSector)
        internal
        pure
        returns (bytes32[128] memory data)
    {
        data[0] = sealedData[0] ^ keccak256(abi.encodePacked(minerId, contextDigest, startSector));
        for (uint256 w = 1; w < WORDS_PER_SEAL; w++) {
            bytes32 previous = sealedData[w - 1];
            bytes32 mask;
            assembly ("memory-safe") {
                mstore(0x00, previous)
                mask := keccak256(0x00, 0x20)
            }
            data[w] = sealedData[w] ^ mask;
        }
    }

    /// @notice Root of the flow tree recovered from one unsealed 4 KiB seal at `recallPos` and the
    /// sibling hashes from height 4 upward (storage.md §3.4).
    function recoverMerkleRoot(bytes32[128] memory data, uint256 recallPos, bytes32[] memory proof)
        internal
        pure
        returns (bytes32 node)
    {
        bytes32[16] memory level;
        for (uint256 s = 0; s < 16; s++) {
            uint256 w = s * 8;
            level[s] = keccak256(
                abi.encodePacked(data[w], data[w + 1], data[w + 2], data[w + 3], data[w + 4], data[w + 5], data[w + 6], data[w + 7])
            );
        }
        for (uint256 width = 8; width >= 1; width /= 2) {
            for (uint256 i = 0; i < width; i++) {
                level[i] = keccak256(abi.encodePacked(level[2 * i], level[2 * i + 1]));
            }
            if (width == 1) break;
        }
        node = FlowMerkle.foldPath(level[0], recallPos / SECTORS_PER_SEAL, proof);
    }
}
