// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title ErasureRegistry: the link from a stored file to its erasure-coding parity.
/// @notice A file uploaded with `--ec k+m` keeps its normal data root; its Reed-Solomon parity
/// segments are a second Flow submission (the parity file). This registry records
/// dataRoot -> (parityRoot, k, m, groups), where `groups` are the shard configs of the
/// placement (u32 shardId || u32 numShard, big-endian, each) from which every reader recomputes
/// the stripe layout (zgos/storage/erasure.py). Anyone may add a record for any root (a reader
/// verifies every rebuilt segment against the data root, so a bogus record cannot corrupt a
/// download); at most MAX_RECORDS records per root, and an uploader records a root only once.
contract ErasureRegistry {
    uint256 public constant MAX_RECORDS = 8;
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

    mapping(bytes32 => Record[]) private records;
    mapping(bytes32 => mapping(address => bool)) public recordedBy;

    event ErasureCoded(bytes32 indexed dataRoot, bytes32 indexed parityRoot, address indexed uploader, uint16 k, uint16 m, bytes groups);

    error InvalidParams(uint16 k, uint16 m);
    error InvalidGroups(uint256 length);
    error TooManyRecords(bytes32 dataRoot);
    error AlreadyRecorded(bytes32 dataRoot, address uploader);

    /// @notice Record that `parityRoot` holds the k+m parity of the file `dataRoot`.
    function record(bytes32 dataRoot, bytes32 parityRoot, uint16 k, uint16 m, bytes calldata groups) external {
        if (k == 0 || m == 0 || uint256(k) + m > MAX_PIECES) revert InvalidParams(k, m);
        uint256 length = groups.length;
        if (length == 0 || length % GROUP_BYTES != 0 || length / GROUP_BYTES > MAX_GROUPS || length / GROUP_BYTES < uint256(k) + m) {
            revert InvalidGroups(length);
        }
        if (recordedBy[dataRoot][msg.sender]) revert AlreadyRecorded(dataRoot, msg.sender);
        if (records[dataRoot].length >= MAX_RECORDS) revert TooManyRecords(dataRoot);
        recordedBy[dataRoot][msg.sender] = true;
        records[dataRoot].push(Record(parityRoot, k, m, msg.sender, uint64(block.timestamp), groups));
        emit ErasureCoded(dataRoot, parityRoot, msg.sender, k, m, groups);
    }

    /// @notice Every record of `dataRoot`, oldest first.
    function recordsOf(bytes32 dataRoot) external view returns (Record[] memory) {
        return records[dataRoot];
    }
}
