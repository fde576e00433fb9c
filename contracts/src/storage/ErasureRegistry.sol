// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Flow} from "./Flow.sol";

/// @title ErasureRegistry: the link from a stored file to its erasure-coding parity.
/// @notice A file uploaded with `--ec k+m` keeps its normal data root; its Reed-Solomon parity
/// segments are a second Flow submission (the parity file). This registry records
/// dataRoot -> (parityRoot, k, m, groups), where `groups` are the shard configs of the
/// placement (u32 shardId || u32 numShard, big-endian, each) from which every reader recomputes
/// the stripe layout (zgos/storage/erasure.py).
///
/// Only the file's owner writes its record: the caller must be the first `Flow` submitter of the
/// data root (`Flow.fileOf`), the parity root must be on the Flow (whoever submitted it: the
/// parity of a public file is computable by anyone, so requiring its first submission would let
/// a stranger who submits it first block the record), and a root has one record, which its
/// owner may replace (e.g. after re-encoding). Why refuse at write time rather than keep records
/// per (root, recorder) and let readers pick: the only recorder a reader can trust is the
/// submitter, and the contract can check that itself for one storage read. Refusing strangers
/// keeps the state at one record per root (no slots a stranger can fill before the uploader,
/// nothing for readers to filter) and a reader needs a single lookup. A record is still only a
/// claim about layout: readers check it against the file (k, m, groups, the parity file's
/// on-chain size) and fall back to the plain download when it does not fit, and they verify
/// every rebuilt segment against the data root, so even the owner's bad record cannot corrupt a
/// download.
contract ErasureRegistry {
    uint256 public constant MAX_PIECES = 256;
    uint256 public constant GROUP_BYTES = 8;
    uint256 public constant MAX_GROUPS = 256;

    struct Record {
        bytes32 parityRoot;
        uint16 k;
        uint16 m;
        address uploader;
        uint64 recordedAt;
        bytes groups;
    }

    Flow public immutable flow;
    mapping(bytes32 => Record) private records;

    event ErasureCoded(bytes32 indexed dataRoot, bytes32 indexed parityRoot, address indexed uploader, uint16 k, uint16 m, bytes groups);

    error InvalidParams(uint16 k, uint16 m);
    error InvalidGroups(uint256 length);
    error NotUploader(bytes32 root, address uploader);
    error ParityNotSubmitted(bytes32 parityRoot);

    constructor(Flow flow_) {
        flow = flow_;
    }

    /// @notice Record that `parityRoot` holds the k+m parity of the file `dataRoot`; the caller
    /// must be the first submitter of `dataRoot`, and `parityRoot` must be submitted. Replaces
    /// the caller's earlier record of `dataRoot`.
    function record(bytes32 dataRoot, bytes32 parityRoot, uint16 k, uint16 m, bytes calldata groups) external {
        if (k == 0 || m == 0 || uint256(k) + m > MAX_PIECES) revert InvalidParams(k, m);
        uint256 length = groups.length;
        if (length == 0 || length % GROUP_BYTES != 0 || length / GROUP_BYTES > MAX_GROUPS || length / GROUP_BYTES < uint256(k) + m) {
            revert InvalidGroups(length);
        }
        (address owner,) = flow.fileOf(dataRoot);
        if (owner != msg.sender) revert NotUploader(dataRoot, owner);
        (address paritySubmitter,) = flow.fileOf(parityRoot);
        if (paritySubmitter == address(0)) revert ParityNotSubmitted(parityRoot);
        records[dataRoot] = Record(parityRoot, k, m, msg.sender, uint64(block.timestamp), groups);
        emit ErasureCoded(dataRoot, parityRoot, msg.sender, k, m, groups);
    }

    /// @notice The record of `dataRoot` (`uploader` is 0 when there is none).
    function recordOf(bytes32 dataRoot) external view returns (Record memory) {
        return records[dataRoot];
    }
}
