// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Market} from "./Market.sol";

struct SubmissionNode {
    bytes32 root;
    uint256 height; // the node covers 2^height sectors
}

struct SubmissionData {
    uint256 length; // bytes, unpadded
    bytes tags;
    SubmissionNode[] nodes;
}

/// @dev 0G's TS SDK 1.2.8 wraps the data with the address it submits for.
struct Submission {
    SubmissionData data;
    address submitter;
}

struct MineContext {
    uint256 epoch;
    uint256 mineStart;
    bytes32 flowRoot;
    uint256 flowLength;
    bytes32 blockDigest;
    bytes32 digest;
}

struct EpochRange {
    uint128 start;
    uint128 end;
}

/// @title Flow: the append-only log of file roots, with the ABI of 0G's FixedPriceFlow.
/// @notice `submit` checks a submission (storage.md §1.4), places it in the global sector
/// flow (aligned to its first node; a file crossing a 1024-sector segment starts on a segment
/// boundary, §1.5), charges `sectors * pricePerSector` through the Market (any overpayment is
/// refunded, unlike 0G where it stays in the contract), keeps the flow's Merkle root (a
/// frontier of completed subtrees, one hash per level) and emits `Submit`, the event storage
/// nodes sync from. Epochs of `blocksPerEpoch` blocks snapshot the root into a mining context.
/// @dev zgos addition: the first submission of every data root is remembered (`fileOf`): who
/// submitted it and its byte length. The data root (the right fold of the node roots) does not
/// fix the byte length (trailing zero bytes change the length, not the root), so readers take a
/// file's size from here, not from a storage node; and records anyone could write about a file
/// (erasure coding, base models) are accepted only from its first submitter. A later submission
/// of the same root (anyone may pay to store the same bytes again) changes neither.
contract Flow {
    uint256 public constant MAX_DEPTH = 64;
    uint256 public constant MAX_LENGTH = 4;
    uint256 public constant SECTOR_BYTES = 256;
    uint256 public constant SECTORS_PER_SEGMENT = 1024;
    bytes32 public constant EMPTY_HASH = keccak256("");

    address payable public immutable market;
    uint256 public immutable blocksPerEpoch;
    uint256 public immutable firstBlock;
    uint256 public immutable deployDelay;

    uint256 public submissionIndex;
    uint256 public epoch;
    uint256 public epochStartPosition;
    uint256 private currentLength;
    bytes32[MAX_DEPTH + 1] private branch; // branch[h]: completed left subtree at level h
    // keccak256 of one zero sector; zero subtrees are hashed up from it in memory, which is
    // cheaper than reading a stored table (2,100 gas per cold slot).
    bytes32 private constant ZERO_SECTOR_HASH = 0xd397b3b043d87fcd6fad1291ff0bfd16401c274896d8c63a923727f077b8e0b5;
    mapping(uint256 => bytes32) private rootByTxSeq;
    mapping(bytes32 => EpochRange) private epochRanges;
    MineContext private context;

    struct FileRecord {
        address submitter; // msg.sender of the first submission of the root
        uint96 length; // its byte length (a file is < 2^72 bytes: fits)
    }

    mapping(bytes32 => FileRecord) private files; // data root => first submission

    event Submit(
        address indexed sender,
        bytes32 indexed identity,
        uint256 submissionIndex,
        uint256 startPos,
        uint256 length,
        SubmissionData submission
    );
    event NewEpoch(
        address indexed sender,
        uint256 indexed index,
        bytes32 startMerkleRoot,
        uint256 submissionIndex,
        uint256 flowLength,
        bytes32 context
    );

    error InvalidSubmission();
    error NotEnoughFee(uint256 price, uint256 amount, uint256 paid);
    error NotStarted(uint256 firstBlock);
    error RefundFailed();

    constructor(address payable market_, uint256 blocksPerEpoch_, uint256 deployDelay_) {
        market = market_;
        blocksPerEpoch = blocksPerEpoch_;
        deployDelay = deployDelay_;
        firstBlock = block.number + deployDelay_;
        currentLength = 1; // sector 0 is a placeholder whose leaf is 0x00..00
        context = MineContext(0, firstBlock, bytes32(0), 1, EMPTY_HASH, EMPTY_HASH);
    }

    // --- submitting ----------------------------------------------------------------------

    function submit(Submission calldata submission)
        external
        payable
        returns (uint256 index, bytes32 digest, uint256 startIndex, uint256 length)
    {
        uint256 price = Market(market).pricePerSector();
        Placed memory placed = _submit(submission.data, price);
        _refund(placed.fee, price, placed.sectors);
        return (placed.index, placed.digest, placed.start, placed.sectors);
    }

    function batchSubmit(Submission[] calldata submissions)
        external
        payable
        returns (
            uint256[] memory indexes,
            bytes32[] memory digests,
            uint256[] memory startIndexes,
            uint256[] memory lengths
        )
    {
        uint256 n = submissions.length;
        indexes = new uint256[](n);
        digests = new bytes32[](n);
        startIndexes = new uint256[](n);
        lengths = new uint256[](n);
        uint256 price = Market(market).pricePerSector();
        uint256 total;
        uint256 sectors;
        for (uint256 i = 0; i < n; i++) {
            Placed memory placed = _submit(submissions[i].data, price);
            (indexes[i], digests[i], startIndexes[i], lengths[i]) = (placed.index, placed.digest, placed.start, placed.sectors);
            total += placed.fee;
            sectors += placed.sectors;
        }
        _refund(total, price, sectors);
    }

    struct Placed {
        uint256 index;
        bytes32 digest;
        uint256 start;
        uint256 sectors;
        uint256 fee;
    }

    function _submit(SubmissionData calldata data, uint256 price) internal returns (Placed memory p) {
        if (block.number < firstBlock) revert NotStarted(firstBlock);
        p.sectors = _validate(data);
        p.fee = p.sectors * price;
        if (p.fee > msg.value) revert NotEnoughFee(price, p.sectors, msg.value);
        _makeContext();
        uint256 before = currentLength;
        p.start = _place(data.nodes, p.sectors);
        Market(market).chargeFee{value: p.fee}(before, p.sectors, p.start - before);
        p.index = submissionIndex++;
        rootByTxSeq[p.index] = _root();
        p.digest = _digest(data.nodes);
        bytes32 dataRoot = _dataRoot(data.nodes);
        if (files[dataRoot].submitter == address(0)) files[dataRoot] = FileRecord(msg.sender, uint96(data.length));
        emit Submit(msg.sender, p.digest, p.index, p.start, p.sectors, data);
    }

    function _refund(uint256 spent, uint256 price, uint256 sectors) internal {
        if (spent > msg.value) revert NotEnoughFee(price, sectors, msg.value);
        uint256 change = msg.value - spent;
        if (change > 0) {
            (bool ok,) = msg.sender.call{value: change}("");
            if (!ok) revert RefundFailed();
        }
    }

    /// @dev Submission.valid() of 0G (storage.md §1.4); returns the charged sectors.
    function _validate(SubmissionData calldata data) internal pure returns (uint256 size) {
        uint256 n = data.nodes.length;
        if (n == 0 || n > MAX_LENGTH) revert InvalidSubmission();
        uint256 first = data.nodes[0].height;
        uint256 last = data.nodes[n - 1].height;
        if (first >= MAX_DEPTH || first - last >= MAX_LENGTH) revert InvalidSubmission();
        for (uint256 i = 0; i < n; i++) {
            if (i > 0 && data.nodes[i].height >= data.nodes[i - 1].height) revert InvalidSubmission();
            size += 1 << data.nodes[i].height;
        }
        if (data.length > size * SECTOR_BYTES) revert InvalidSubmission();
        uint256 lastCapacity;
        if (size < 16) lastCapacity = size - 1;
        else if (n == 1) lastCapacity = size - size / 16;
        else lastCapacity = size - (1 << (first - 3));
        if (data.length <= lastCapacity * SECTOR_BYTES) revert InvalidSubmission();
    }

    function _digest(SubmissionNode[] calldata nodes) internal pure returns (bytes32) {
        bytes memory packed = new bytes(32 * nodes.length);
        for (uint256 i = 0; i < nodes.length; i++) {
            bytes32 root = nodes[i].root;
            assembly ("memory-safe") {
                mstore(add(add(packed, 32), mul(i, 32)), root)
            }
        }
        return keccak256(packed);
    }

    /// @dev The file's data root: the right fold of the node roots (storage.md §1.3).
    function _dataRoot(SubmissionNode[] calldata nodes) internal pure returns (bytes32 root) {
        uint256 i = nodes.length - 1;
        root = nodes[i].root;
        while (i > 0) {
            i--;
            root = keccak256(abi.encodePacked(nodes[i].root, root));
        }
    }

    // --- the flow tree -------------------------------------------------------------------

    function _nextAlign(uint256 x, uint256 height) internal pure returns (uint256) {
        return x == 0 ? 0 : (((x - 1) >> height) + 1) << height;
    }

    /// @dev FlowTreeLib.pad + insertNode: returns the first node's position.
    function _place(SubmissionNode[] calldata nodes, uint256 size) internal returns (uint256 start) {
        uint256 position = _nextAlign(currentLength, nodes[0].height);
        if (position % SECTORS_PER_SEGMENT != 0 && position / SECTORS_PER_SEGMENT != (position + size - 1) / SECTORS_PER_SEGMENT) {
            _padTo(position + SECTORS_PER_SEGMENT - position % SECTORS_PER_SEGMENT);
        }
        for (uint256 i = 0; i < nodes.length; i++) {
            _padTo(_nextAlign(currentLength, nodes[i].height));
            if (i == 0) start = currentLength;
            _append(nodes[i].root, nodes[i].height);
        }
    }

    function _padTo(uint256 target) internal {
        while (currentLength < target) {
            uint256 length = currentLength;
            uint256 height = 0;
            while (height < MAX_DEPTH && (length >> height) & 1 == 0 && length + (2 << height) <= target) {
                height++;
            }
            _append(_zeros(height), height);
        }
    }

    function _zeros(uint256 height) internal pure returns (bytes32 z) {
        z = ZERO_SECTOR_HASH;
        for (uint256 h = 0; h < height; h++) z = keccak256(abi.encodePacked(z, z));
    }

    function _append(bytes32 root, uint256 height) internal {
        bytes32 node = root;
        uint256 level = height;
        uint256 count = (currentLength >> height) + 1;
        while (count & 1 == 0) {
            node = keccak256(abi.encodePacked(branch[level], node));
            count >>= 1;
            level++;
        }
        branch[level] = node;
        currentLength += 1 << height;
    }

    function _root() internal view returns (bytes32) {
        uint256 length = currentLength;
        uint256 depth = 0;
        while ((1 << depth) < length) depth++;
        if (length == 1 << depth) return branch[depth];
        bytes32 node = ZERO_SECTOR_HASH;
        bytes32 zero = ZERO_SECTOR_HASH; // root of 2^level zero sectors
        for (uint256 level = 0; level < depth; level++) {
            if ((length >> level) & 1 == 1) node = keccak256(abi.encodePacked(branch[level], node));
            else node = keccak256(abi.encodePacked(node, zero));
            zero = keccak256(abi.encodePacked(zero, zero));
        }
        return node;
    }

    // --- epochs --------------------------------------------------------------------------

    function makeContext() external {
        _makeContext();
    }

    function makeContextWithResult() external returns (MineContext memory) {
        _makeContext();
        return context;
    }

    function _makeContext() internal {
        if (blocksPerEpoch == 0 || block.number <= firstBlock) return;
        // Skip epochs whose start block hash is gone: they cannot be mined, and looping over
        // each one would make the first submit after a quiet period arbitrarily expensive.
        uint256 latest = (block.number - 1 - firstBlock) / blocksPerEpoch; // last epoch started before this block
        if (latest > epoch + 1) epoch = latest - 1;
        while (true) {
            uint256 nextEpochStart = firstBlock + (epoch + 1) * blocksPerEpoch;
            if (nextEpochStart >= block.number) return;
            bytes32 root = _root();
            bytes32 blockDigest = blockhash(nextEpochStart);
            bytes32 digest = EMPTY_HASH;
            if (blockDigest != bytes32(0)) {
                digest = keccak256(abi.encode(blockDigest, root, currentLength));
                epochRanges[digest] = EpochRange(uint128(epochStartPosition), uint128(currentLength));
                epochStartPosition = currentLength;
            } else {
                blockDigest = EMPTY_HASH; // too old to be mined: the epoch is skipped
            }
            epoch += 1;
            context = MineContext(epoch, nextEpochStart, root, currentLength, blockDigest, digest);
            emit NewEpoch(msg.sender, epoch, root, submissionIndex, currentLength, digest);
        }
    }

    // --- views ---------------------------------------------------------------------------

    function numSubmissions() external view returns (uint256) {
        return submissionIndex;
    }

    /// @notice The first submission of `dataRoot`: its submitter (0 if never submitted) and
    /// byte length.
    function fileOf(bytes32 dataRoot) external view returns (address submitter, uint256 length) {
        FileRecord storage file = files[dataRoot];
        return (file.submitter, file.length);
    }

    function tree() external view returns (uint256, uint256) {
        return (currentLength, 0);
    }

    function computeFlowRoot() external view returns (bytes32) {
        return _root();
    }

    function getFlowRootByTxSeq(uint256 txSeq) external view returns (bytes32) {
        return rootByTxSeq[txSeq];
    }

    function getContext() external view returns (MineContext memory) {
        return context;
    }

    function getEpochRange(bytes32 digest) external view returns (EpochRange memory) {
        return epochRanges[digest];
    }
}
