// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title LedgerManager: every user's prepaid funds for compute, split per provider.
/// @notice A user deposits into a ledger (`available`), moves funds into per-provider
/// sub-accounts (`fund`), and gets them back with a refund that unlocks after `lockTime`
/// (`requestRefund`, then `processRefund`). While a refund is locked the provider can still
/// settle what the user signed for, so a user cannot run away with fees it owes. Settlement
/// is done by an authorised serving contract (`charge`), which credits the provider's own
/// ledger balance; anyone withdraws their available balance (`withdraw`). Pull payments only:
/// no external call happens before state is updated. Reference: compute.md §3.1-3.2.
contract LedgerManager {
    struct SubAccount {
        uint256 balance; // everything in the sub-account, including the pending refund
        uint256 pendingRefund; // part of balance the user asked back (0 = none)
        uint64 refundUnlockAt; // when pendingRefund may be processed
    }

    uint256 public constant MAX_LOCK_TIME = 30 days;

    address public immutable owner;
    uint256 public lockTime;
    mapping(address => bool) public isServing;
    mapping(address => uint256) public available;
    mapping(address => mapping(address => SubAccount)) private subAccounts;
    mapping(address => address[]) private providers;
    mapping(address => mapping(address => bool)) private hasSubAccount;

    event Deposited(address indexed user, uint256 amount);
    event Withdrawn(address indexed user, uint256 amount);
    event Funded(address indexed user, address indexed provider, uint256 amount);
    event RefundRequested(address indexed user, address indexed provider, uint256 amount, uint256 unlockAt);
    event Refunded(address indexed user, address indexed provider, uint256 amount);
    event Charged(address indexed user, address indexed provider, uint256 amount);
    event ServingSet(address indexed serving, bool allowed);
    event LockTimeUpdated(uint256 lockTime);

    error NotOwner();
    error NotServing(address caller);
    error ZeroAmount();
    error InvalidLockTime(uint256 lockTime);
    error InsufficientBalance(uint256 available, uint256 needed);
    error NoRefundPending(address user, address provider);
    error RefundLocked(uint256 unlockAt);
    error TransferFailed();

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner();
        _;
    }

    constructor(uint256 lockTime_) {
        if (lockTime_ > MAX_LOCK_TIME) revert InvalidLockTime(lockTime_);
        owner = msg.sender;
        lockTime = lockTime_;
    }

    // --- owner -------------------------------------------------------------------------

    function setServing(address serving, bool allowed) external onlyOwner {
        isServing[serving] = allowed;
        emit ServingSet(serving, allowed);
    }

    function setLockTime(uint256 lockTime_) external onlyOwner {
        if (lockTime_ > MAX_LOCK_TIME) revert InvalidLockTime(lockTime_);
        lockTime = lockTime_;
        emit LockTimeUpdated(lockTime_);
    }

    // --- users -------------------------------------------------------------------------

    /// @notice Add msg.value to the caller's available balance.
    function deposit() external payable {
        if (msg.value == 0) revert ZeroAmount();
        available[msg.sender] += msg.value;
        emit Deposited(msg.sender, msg.value);
    }

    /// @notice Send `amount` of the caller's available balance back to the caller.
    function withdraw(uint256 amount) external {
        if (amount == 0) revert ZeroAmount();
        uint256 have = available[msg.sender];
        if (have < amount) revert InsufficientBalance(have, amount);
        available[msg.sender] = have - amount;
        emit Withdrawn(msg.sender, amount);
        (bool ok,) = payable(msg.sender).call{value: amount}("");
        if (!ok) revert TransferFailed();
    }

    /// @notice Move `amount` from the caller's available balance into its sub-account with
    /// `provider` (created on first use). Funding also cancels a pending refund.
    function fund(address provider, uint256 amount) external {
        if (amount == 0) revert ZeroAmount();
        uint256 have = available[msg.sender];
        if (have < amount) revert InsufficientBalance(have, amount);
        available[msg.sender] = have - amount;
        _credit(msg.sender, provider, amount);
    }

    /// @notice Deposit msg.value straight into the caller's sub-account with `provider`.
    function depositAndFund(address provider) external payable {
        if (msg.value == 0) revert ZeroAmount();
        emit Deposited(msg.sender, msg.value);
        _credit(msg.sender, provider, msg.value);
    }

    /// @notice Ask for `amount` of the sub-account back; it unlocks after `lockTime`.
    /// A new request replaces the previous one and restarts the lock.
    function requestRefund(address provider, uint256 amount) external {
        if (amount == 0) revert ZeroAmount();
        SubAccount storage account = subAccounts[msg.sender][provider];
        if (account.balance < amount) revert InsufficientBalance(account.balance, amount);
        uint256 unlockAt = block.timestamp + lockTime;
        account.pendingRefund = amount;
        account.refundUnlockAt = uint64(unlockAt);
        emit RefundRequested(msg.sender, provider, amount, unlockAt);
    }

    /// @notice Move an unlocked refund (what is left of it after settlements) back to the
    /// caller's available balance.
    function processRefund(address provider) external returns (uint256 amount) {
        SubAccount storage account = subAccounts[msg.sender][provider];
        if (account.pendingRefund == 0) revert NoRefundPending(msg.sender, provider);
        if (block.timestamp < account.refundUnlockAt) revert RefundLocked(account.refundUnlockAt);
        amount = account.pendingRefund < account.balance ? account.pendingRefund : account.balance;
        account.balance -= amount;
        account.pendingRefund = 0;
        account.refundUnlockAt = 0;
        available[msg.sender] += amount;
        emit Refunded(msg.sender, provider, amount);
    }

    // --- serving contracts -------------------------------------------------------------

    /// @notice Pay `amount` from `user`'s sub-account with `provider` to the provider's
    /// available balance. Only authorised serving contracts, which check the user's voucher.
    function charge(address user, address provider, uint256 amount) external {
        if (!isServing[msg.sender]) revert NotServing(msg.sender);
        SubAccount storage account = subAccounts[user][provider];
        if (account.balance < amount) revert InsufficientBalance(account.balance, amount);
        account.balance -= amount;
        if (account.pendingRefund > account.balance) account.pendingRefund = account.balance;
        available[provider] += amount;
        emit Charged(user, provider, amount);
    }

    // --- views -------------------------------------------------------------------------

    function getSubAccount(address user, address provider)
        external
        view
        returns (uint256 balance, uint256 pendingRefund, uint256 refundUnlockAt)
    {
        SubAccount storage account = subAccounts[user][provider];
        return (account.balance, account.pendingRefund, account.refundUnlockAt);
    }

    function getProviders(address user) external view returns (address[] memory) {
        return providers[user];
    }

    function _credit(address user, address provider, uint256 amount) private {
        if (!hasSubAccount[user][provider]) {
            hasSubAccount[user][provider] = true;
            providers[user].push(provider);
        }
        SubAccount storage account = subAccounts[user][provider];
        account.balance += amount;
        account.pendingRefund = 0;
        account.refundUnlockAt = 0;
        emit Funded(user, provider, amount);
    }
}
