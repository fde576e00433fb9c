// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title NodeRegistry: where every zgos node announces itself.
/// @notice An operator account announces at most one node per kind (storage, KV, DA signer,
/// compute provider, INFT oracle). Clients and peers discover the network by reading this registry; the
/// announcement is a transaction, so it is signed by the operator's key. Anyone can announce, so
/// the lists have no bound: they are read page by page (`getNodesPage`), and each entry is
/// bounded (URL and `extra` at most 256 bytes), so one page always fits an `eth_call`.
contract NodeRegistry {
    uint8 public constant KIND_STORAGE = 0;
    uint8 public constant KIND_KV = 1;
    uint8 public constant KIND_DA_SIGNER = 2;
    uint8 public constant KIND_COMPUTE = 3;
    uint8 public constant KIND_INFT_ORACLE = 4;
    uint8 public constant KIND_COUNT = 5;

    uint256 public constant MAX_URL_BYTES = 256;
    uint256 public constant MAX_EXTRA_BYTES = 256;
    uint256 public constant MAX_PAGE = 100; // entries per page of `getNodesPage`

    struct Node {
        address operator;
        uint8 kind;
        string url;
        uint32 shardId;
        uint32 numShard;
        bytes extra; // kind-specific data, e.g. a DA signer's BLS public key
        uint64 updatedAt;
    }

    // kind => operators announcing that kind, in announcement order (swap-and-pop on removal)
    mapping(uint8 => address[]) private operators;
    // kind => operator => index + 1 in `operators[kind]` (0 = absent)
    mapping(uint8 => mapping(address => uint256)) private positions;
    mapping(uint8 => mapping(address => Node)) private nodes;

    event NodeAnnounced(address indexed operator, uint8 indexed kind, string url, uint32 shardId, uint32 numShard);
    event NodeRemoved(address indexed operator, uint8 indexed kind);

    error UnknownKind(uint8 kind);
    error InvalidUrl();
    error InvalidExtra(uint256 length);
    error InvalidShard(uint32 shardId, uint32 numShard);
    error NotAnnounced(address operator, uint8 kind);

    /// @notice Announce or update the caller's node of `kind`.
    /// @dev numShard must be a power of two and shardId < numShard (as 0G's ShardConfig).
    function announce(uint8 kind, string calldata url, uint32 shardId, uint32 numShard, bytes calldata extra)
        external
    {
        if (kind >= KIND_COUNT) revert UnknownKind(kind);
        uint256 urlLength = bytes(url).length;
        if (urlLength == 0 || urlLength > MAX_URL_BYTES) revert InvalidUrl();
        if (extra.length > MAX_EXTRA_BYTES) revert InvalidExtra(extra.length);
        if (numShard == 0 || (numShard & (numShard - 1)) != 0 || shardId >= numShard) {
            revert InvalidShard(shardId, numShard);
        }
        if (positions[kind][msg.sender] == 0) {
            operators[kind].push(msg.sender);
            positions[kind][msg.sender] = operators[kind].length;
        }
        nodes[kind][msg.sender] = Node(msg.sender, kind, url, shardId, numShard, extra, uint64(block.timestamp));
        emit NodeAnnounced(msg.sender, kind, url, shardId, numShard);
    }

    /// @notice Remove the caller's node of `kind`.
    function remove(uint8 kind) external {
        uint256 position = positions[kind][msg.sender];
        if (position == 0) revert NotAnnounced(msg.sender, kind);
        address[] storage list = operators[kind];
        address last = list[list.length - 1];
        list[position - 1] = last;
        positions[kind][last] = position;
        list.pop();
        delete positions[kind][msg.sender];
        delete nodes[kind][msg.sender];
        emit NodeRemoved(msg.sender, kind);
    }

    function getNode(address operator, uint8 kind) external view returns (Node memory) {
        if (positions[kind][operator] == 0) revert NotAnnounced(operator, kind);
        return nodes[kind][operator];
    }

    /// @notice Nodes of `kind` from `offset`, at most `limit` (capped at MAX_PAGE), in
    /// announcement order (a removal moves the last entry into the gap), and the total count.
    function getNodesPage(uint8 kind, uint256 offset, uint256 limit)
        external
        view
        returns (Node[] memory page, uint256 total)
    {
        address[] storage list = operators[kind];
        total = list.length;
        if (limit > MAX_PAGE) limit = MAX_PAGE;
        uint256 count = offset >= total ? 0 : (total - offset < limit ? total - offset : limit);
        page = new Node[](count);
        for (uint256 i = 0; i < count; i++) {
            page[i] = nodes[kind][list[offset + i]];
        }
    }

    function nodeCount(uint8 kind) external view returns (uint256) {
        return operators[kind].length;
    }
}
