// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title BLS12381: BLS signature checks on the EIP-2537 precompiles (Prague).
/// @notice Scheme: Ethereum's proof-of-possession ciphersuite (IETF draft-irtf-cfrg-bls-signature
/// "minimal-pubkey-size"): public keys in G1, signatures in G2, messages hashed to G2 with
/// hash_to_curve (RFC 9380, BLS12381G2_XMD:SHA-256_SSWU_RO_). expand_message_xmd runs on the
/// SHA-256 precompile, field reduction on MODEXP, and map_to_curve + cofactor clearing on
/// MAP_FP2_TO_G2 (clear_cofactor is linear, so clear(map(u0)) + clear(map(u1)) is the RFC's
/// clear(map(u0) + map(u1))). Points use the EIP-2537 encoding: every Fp element is 64 bytes,
/// big-endian, top 16 bytes zero; G1 = x || y (128 B), G2 = x.c0 || x.c1 || y.c0 || y.c1 (256 B).
library BLS12381 {
    address internal constant G1ADD = address(0x0b);
    address internal constant G2ADD = address(0x0d);
    address internal constant PAIRING = address(0x0f);
    address internal constant MAP_FP2_TO_G2 = address(0x11);
    address internal constant MODEXP = address(0x05);

    uint256 internal constant G1_BYTES = 128;
    uint256 internal constant G2_BYTES = 256;
    uint256 internal constant COMPRESSED_G1_BYTES = 48;
    uint256 internal constant HASH_TO_FIELD_BYTES = 256; // 2 Fp2 elements x 2 coefficients x 64 B

    bytes internal constant SIG_DST = "BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";
    bytes internal constant POP_DST = "BLS_POP_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";

    // Field modulus p, 64-byte big-endian.
    bytes internal constant P =
        hex"000000000000000000000000000000001a0111ea397fe69a4b1ba7b6434bacd764774b84f38512bf6730d2a0f6b0f6241eabfffeb153ffffb9feffffffffaaab";
    // p as the two words of its 64-byte encoding.
    uint256 internal constant P_HI = 0x000000000000000000000000000000001a0111ea397fe69a4b1ba7b6434bacd7;
    uint256 internal constant P_LO = 0x64774b84f38512bf6730d2a0f6b0f6241eabfffeb153ffffb9feffffffffaaab;
    // (p - 1) / 2 as two words (high 32 bytes, low 32 bytes) of the 64-byte encoding.
    uint256 internal constant HALF_P_HI = 0x000000000000000000000000000000000d0088f51cbff34d258dd3db21a5d66b;
    uint256 internal constant HALF_P_LO = 0xb23ba5c279c2895fb39869507b587b120f55ffff58a9ffffdcff7fffffffd555;
    // -G1 generator (x, p - y).
    bytes internal constant NEG_G1 =
        hex"0000000000000000000000000000000017f1d3a73197d7942695638c4fa9ac0fc3688c4f9774b905a14e3a3f171bac586c55e83ff97a1aeffb3af00adb22c6bb00000000000000000000000000000000114d1d6855d545a8aa7d76c8cf2e21f267816aef1db507c96655b9d5caac42364e6f38ba0ecb751bad54dcd6b939c2ca";

    error PrecompileFailed(address precompile);
    error InvalidPointLength();

    function _call(address precompile, bytes memory input, uint256 outLength) private view returns (bytes memory out) {
        bool ok;
        out = new bytes(outLength);
        assembly {
            ok := staticcall(gas(), precompile, add(input, 32), mload(input), add(out, 32), outLength)
        }
        if (!ok) revert PrecompileFailed(precompile);
    }

    /// @notice RFC 9380 expand_message_xmd with SHA-256, producing 256 bytes.
    function expandMessageXmd(bytes memory message, bytes memory dst) internal pure returns (bytes memory out) {
        bytes memory dstPrime = abi.encodePacked(dst, uint8(dst.length));
        bytes32 b0 = sha256(abi.encodePacked(new bytes(64), message, uint16(HASH_TO_FIELD_BYTES), uint8(0), dstPrime));
        bytes32 bi = sha256(abi.encodePacked(b0, uint8(1), dstPrime));
        out = new bytes(HASH_TO_FIELD_BYTES);
        assembly {
            mstore(add(out, 32), bi)
        }
        for (uint256 i = 2; i <= HASH_TO_FIELD_BYTES / 32; i++) {
            bi = sha256(abi.encodePacked(b0 ^ bi, uint8(i), dstPrime));
            assembly {
                mstore(add(out, mul(i, 32)), bi)
            }
        }
    }

    /// @notice A 64-byte big-endian integer reduced modulo p (MODEXP with exponent 1).
    function _reduce(bytes memory uniform, uint256 offset) private view returns (bytes memory) {
        bytes memory input = new bytes(96 + 64 + 1 + 64);
        assembly {
            mstore(add(input, 32), 64) // base length
            mstore(add(input, 64), 1) // exponent length
            mstore(add(input, 96), 64) // modulus length
            let src := add(add(uniform, 32), offset)
            mstore(add(input, 128), mload(src))
            mstore(add(input, 160), mload(add(src, 32)))
            mstore8(add(input, 192), 1)
            mstore(add(input, 193), P_HI)
            mstore(add(input, 225), P_LO)
        }
        return _call(MODEXP, input, 64);
    }

    /// @notice hash_to_curve(message) in G2 with domain separation tag `dst`.
    function hashToG2(bytes memory message, bytes memory dst) internal view returns (bytes memory) {
        bytes memory uniform = expandMessageXmd(message, dst);
        bytes memory q0 = _call(MAP_FP2_TO_G2, bytes.concat(_reduce(uniform, 0), _reduce(uniform, 64)), G2_BYTES);
        bytes memory q1 = _call(MAP_FP2_TO_G2, bytes.concat(_reduce(uniform, 128), _reduce(uniform, 192)), G2_BYTES);
        return _call(G2ADD, bytes.concat(q0, q1), G2_BYTES);
    }

    function g1Add(bytes memory a, bytes memory b) internal view returns (bytes memory) {
        return _call(G1ADD, bytes.concat(a, b), G1_BYTES);
    }

    /// @notice True iff e(pubkey, H(message)) == e(G1, signature). The pairing precompile checks
    /// that both points are on their curves and in the prime-order subgroups; an invalid point
    /// makes it fail, which reads as an invalid signature.
    function verify(bytes memory pubkey, bytes memory message, bytes memory signature, bytes memory dst)
        internal
        view
        returns (bool)
    {
        if (pubkey.length != G1_BYTES || signature.length != G2_BYTES) revert InvalidPointLength();
        bytes memory input = bytes.concat(pubkey, hashToG2(message, dst), NEG_G1, signature);
        (bool ok, bytes memory out) = PAIRING.staticcall(input);
        return ok && out.length == 32 && uint256(bytes32(out)) == 1;
    }

    function isInfinity(bytes memory point) internal pure returns (bool) {
        for (uint256 i = 0; i < point.length; i++) {
            if (point[i] != 0) return false;
        }
        return true;
    }

    /// @notice True iff `compressed` (48-byte ZCash encoding) names the G1 point `point`.
    function matchesCompressed(bytes memory point, bytes memory compressed) internal pure returns (bool) {
        if (point.length != G1_BYTES || compressed.length != COMPRESSED_G1_BYTES) return false;
        uint8 flags = uint8(compressed[0]) & 0xe0;
        if (flags != 0x80 && flags != 0xa0) return false; // compressed, not infinity
        if (uint8(compressed[0]) & 0x1f != uint8(point[16])) return false;
        for (uint256 i = 1; i < 48; i++) {
            if (compressed[i] != point[16 + i]) return false;
        }
        for (uint256 i = 0; i < 16; i++) {
            if (point[i] != 0) return false;
        }
        uint256 yHi;
        uint256 yLo;
        assembly {
            yHi := mload(add(point, 96))
            yLo := mload(add(point, 128))
        }
        bool yIsLarger = yHi > HALF_P_HI || (yHi == HALF_P_HI && yLo > HALF_P_LO);
        return yIsLarger == (flags == 0xa0);
    }
}
