// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

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

    uint64 private constant IV0 = 0x6a09e667f3bcc908;
    uint64 private constant IV1 = 0xbb67ae8584caa73b;
    uint64 private constant IV2 = 0x3c6ef372fe94f82b;
    uint64 private constant IV3 = 0xa54ff53a5f1d36f1;
    uint64 private constant IV4 = 0x510e527fade682d1;
    uint64 private constant IV5 = 0x9b05688c2b3e6c1f;
    uint64 private constant IV6 = 0x1f83d9abfb41bd6b;
    uint64 private constant IV7 = 0x5be0cd19137e2179;

    function _le64(uint64 x) private pure returns (bytes8) {
        uint64 y = 0;
        for (uint256 i = 0; i < 8; i++) {
            y = (y << 8) | ((x >> (8 * i)) & 0xff);
        }
        return bytes8(y);
    }

    /// @notice Unkeyed BLAKE2b with a 64-byte digest of `message` (length > 0).
    function blake2b512(bytes memory message) internal view returns (bytes memory h) {
        h = abi.encodePacked(
            _le64(IV0 ^ 0x01010040), _le64(IV1), _le64(IV2), _le64(IV3),
            _le64(IV4), _le64(IV5), _le64(IV6), _le64(IV7)
        );
        uint256 length = message.length;
        uint256 blocks = (length + 127) / 128;
        for (uint256 b = 0; b < blocks; b++) {
            bytes memory chunk = new bytes(128);
            uint256 start = b * 128;
            uint256 end = start + 128 < length ? start + 128 : length;
            for (uint256 i = start; i < end; i++) {
                chunk[i - start] = message[i];
            }
            bool last = b + 1 == blocks;
            uint64 counter = uint64(end);
            bytes memory input = abi.encodePacked(
                uint32(12), h, chunk, _le64(counter), bytes8(0), last ? bytes1(0x01) : bytes1(0x00)
            );
            (bool ok, bytes memory out) = BLAKE2F.staticcall(input);
            if (!ok || out.length != 64) revert Blake2FailedCall();
            h = out;
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
            first = keccak256(abi.encodePacked(first, second));
            second = keccak256(abi.encodePacked(first, second));
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
            data[w] = sealedData[w] ^ keccak256(abi.encodePacked(sealedData[w - 1]));
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
        node = level[0];
        uint256 index = recallPos / SECTORS_PER_SEAL;
        for (uint256 i = 0; i < proof.length; i++) {
            node = ((index >> i) & 1) == 0
                ? keccak256(abi.encodePacked(node, proof[i]))
                : keccak256(abi.encodePacked(proof[i], node));
        }
    }
}
